import ArgumentParser
import TallyClient
import TallyProtocol

/// `tally credits ledger`: getCreditLedger, every page; --follow polls for new entries.
struct CreditsLedgerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger",
        abstract: "Show a customer's credit ledger in order; --follow keeps printing new entries until Ctrl-C.",
        discussion: """
            One row per entry: grants, deductions (with the grants they drew in BREAKDOWN), expiries and \
            voids; AMOUNT is the signed effect on the pool's balance, BALANCE the pool's ledger balance \
            after it (ledgerBalance: remaining credits of every grant not expired or voided, scheduled \
            ones included, less the overdraft; `credits balance` shows what can be spent now).
            With --json: {"customerId": …, "entries": [...], "next": null}; with --json --follow one entry \
            per line.
            """)

    enum EventType: String, ExpressibleByArgument, CaseIterable {
        case granted = "CREDITS_GRANTED", consumed = "CREDITS_CONSUMED", expired = "CREDITS_EXPIRED", voided = "CREDITS_VOIDED"

        init?(argument: String) {
            let upper = argument.uppercased()
            self.init(rawValue: upper.hasPrefix("CREDITS_") ? upper : "CREDITS_" + upper)
        }
    }

    /// Entries asked for per call.
    static let pageLimit = 1000

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The customer's id.")
    var customerId: String

    @Option(help: ArgumentHelp("Only this currency.", valueName: "id"))
    var currency: String?

    @Option(help: ArgumentHelp("Only this resource's pool.", valueName: "id"))
    var resource: String?

    @Option(help: "Only entries of this type (GRANTED, CONSUMED, EXPIRED, VOIDED).")
    var type: EventType?

    @Option(parsing: .unconditional, help: ArgumentHelp("Start after this ledger sequence.", valueName: "sequence"))
    var after: Int?

    @Flag(help: "Keep polling for new entries and print them as they come.")
    var follow = false

    @Option(name: .customLong("interval-ms"), parsing: .unconditional, help: "Milliseconds between polls with --follow.")
    var intervalMillis: Int = 500

    func validate() throws {
        if let after, after < 0 { throw ValidationError("--after must be 0 or more.") }
        guard intervalMillis >= 1 else { throw ValidationError("--interval-ms must be at least 1.") }
    }

    func run() throws {
        var base: JSONObject = ["customerId": .string(customerId), "limit": .number(String(Self.pageLimit))]
        if let currency { base["currencyId"] = .string(currency) }
        if let resource { base["resourceId"] = .string(resource) }
        if let type { base["eventType"] = .string(type.rawValue) }
        let context = TallyCommandContext(global)
        try context.run { first in
            var connection = first
            defer { if connection !== first { connection.close() } }
            var cursor = after ?? 0
            /// One page after `cursor`; advances it. Returns the entries and whether more are waiting.
            func page() throws -> ([JSONValue], Bool) {
                var params = base
                params["after"] = .number(String(cursor))
                let result = try context.read("getCreditLedger", params, on: &connection)
                let entries = result["entries"]?.arrayValue ?? []
                if let last = entries.last?["sequence"]?.numberText.flatMap({ Int($0) }) { cursor = last }
                let more = !entries.isEmpty && !(result["next"]?.isNull ?? true)
                return (entries, more)
            }

            var entries: [JSONValue] = []
            while true {
                let (batch, more) = try page()
                entries += batch
                if !more { break }
            }
            if !follow {
                context.output(.object(["customerId": .string(customerId), "entries": .array(entries), "next": .null])) {
                    entries.isEmpty ? "no credit ledger entries" : Self.table(entries).render()
                }
                return
            }
            // Later rows keep at least the widths printed so far, so they stay under the header; a
            // batch with a wider value (a long id, a large amount) comes under a header of its own
            // over the wider columns.
            var widths = Self.followWidths
            if context.json {
                for entry in entries { Console.out(entry.jsonText) }
            } else {
                let first = Self.table(entries, widths: widths)
                widths = first.columnWidths()
                Console.out(first.render())
            }
            while true {
                let batch: [JSONValue], more: Bool
                do {
                    (batch, more) = try page()
                } catch let error as RPCError {
                    throw error
                } catch {
                    // The daemon went away (a restart, say): say where to pick up.
                    Console.error("tally credits ledger --follow: lost tallyd after sequence \(cursor); resume with --after \(cursor)")
                    throw error
                }
                if !batch.isEmpty {
                    if context.json {
                        for entry in batch { Console.out(entry.jsonText) }
                    } else {
                        let rows = Self.table(batch, widths: widths)
                        let grown = rows.columnWidths(header: false)
                        // The last column (BREAKDOWN) may grow: nothing stands to its right.
                        let wider = zip(grown.dropLast(), widths.dropLast()).contains { $0 > $1 }
                        widths = grown
                        Console.out(rows.render(header: wider))
                    }
                }
                if !more { Console.sleep(milliseconds: intervalMillis) }
            }
        }
    }

    /// "grant_4=5 grant_7=2": what a deduction drew from each grant.
    static func breakdown(_ entry: JSONValue) -> String {
        (entry["breakdown"]?.arrayValue ?? []).map { "\(Display.cell($0["creditGrantId"]))=\(Display.cell($0["amount"]))" }.joined(separator: " ")
    }

    /// The least widths of the columns with --follow, room for most values from the start (ids
    /// of up to 16 and 24 characters in POOL and GRANT/FEATURE).
    static let followWidths = [7, 16, 20, 20, 12, 16, 24, 24, 0]

    /// The entries as a table, each column at least as wide as `widths` says.
    static func table(_ entries: [JSONValue], widths: [Int] = Array(repeating: 0, count: 9)) -> TableFormatter {
        var table = TableFormatter(columns: [
            .init("SEQ", alignment: .right, widthMin: widths[0]), .init("TYPE", alignment: .left, widthMin: widths[1]),
            .init("AMOUNT", alignment: .right, widthMin: widths[2]), .init("BALANCE", alignment: .right, widthMin: widths[3]),
            .init("CURRENCY", alignment: .left, widthMin: widths[4]), .init("POOL", alignment: .left, widthMin: widths[5]),
            .init("GRANT/FEATURE", alignment: .left, widthMin: widths[6]), .init("TIMESTAMP", alignment: .left, widthMin: widths[7]),
            .init("BREAKDOWN", alignment: .left, widthMin: widths[8]),
        ])
        for entry in entries {
            let full = entry["eventType"]?.stringValue ?? ""
            let type = full.hasPrefix("CREDITS_") ? String(full.dropFirst("CREDITS_".count)) : full
            table.append([
                Display.cell(entry["sequence"]), type, Display.cell(entry["amount"]), Display.cell(entry["balanceAfter"]),
                Display.cell(entry["currencyId"]), entry["resourceId"].map { Display.cell($0) } ?? "(global)",
                Display.cell(entry["creditGrantId"] ?? entry["featureId"]), Display.cell(entry["timestamp"]), breakdown(entry),
            ])
        }
        return table
    }
}
