import ArgumentParser
import TallyClient
import TallyProtocol

/// `tally ledger tail`: the last events of the log, optionally following new ones.
struct LedgerTailCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tail",
        abstract: "Show the last events of the ledger; --follow keeps printing new ones until Ctrl-C.")

    /// Rows fit this many terminal columns: the DATA column takes what the others leave.
    static let lineWidthMax = 100
    static let hashPrefixLength = 12
    static let dataWidthMin = 16
    /// Events asked for per readLedger call (the daemon's most).
    static let pageLimit = 1000

    @OptionGroup var global: GlobalOptions

    @Option(name: .short, parsing: .unconditional, help: "How many of the last events to show.")
    var n: Int = 20

    @Option(parsing: .unconditional, help: ArgumentHelp(
        "Start after this sequence instead of at the last n events: shows the n events that follow it (with --follow, every later one).",
        valueName: "sequence"))
    var after: Int?

    @Flag(help: "Keep polling for new events and print them as they come.")
    var follow = false

    @Option(name: .customLong("interval-ms"), parsing: .unconditional, help: "Milliseconds between polls with --follow.")
    var intervalMillis: Int = 500

    func validate() throws {
        guard n >= 0 else { throw ValidationError("-n must be 0 or more.") }
        guard intervalMillis >= 1 else { throw ValidationError("--interval-ms must be at least 1.") }
        if let after, after < 0 { throw ValidationError("--after must be 0 or more (0 is before the first event).") }
    }

    func run() throws {
        let context = TallyCommandContext(global)
        try context.run { first in
            var connection = first
            defer { if connection !== first { connection.close() } }
            // Where to start: after `--after` (to resume a follow where it stopped), else n back.
            let status = try connection.call("getStatus")
            let last = status["lastSequence"]?.numberText.flatMap { Int($0) } ?? 0
            var cursor: Int
            if let after {
                cursor = after
                // A cursor past the end is from another history (the ledger was restored from an
                // older snapshot): the events that take those sequences now would be skipped.
                if after > last {
                    Console.error("warning: the ledger ends at sequence \(last), before --after \(after): if it was restored from a snapshot, the events numbered \(last + 1) to \(after) from now on are new ones, and this skips them; use --after \(last) to see them")
                }
            } else {
                cursor = max(0, last - n)
            }

            // The daemon may cap a page below n: follow `next` until n events are in.
            var events: [JSONValue] = []
            var next: JSONValue = .null
            while events.count < n {
                let page = try connection.call(
                    "readLedger", ["after": .number(String(cursor)), "limit": .number(String(min(n - events.count, Self.pageLimit)))])
                let batch = page["events"]?.arrayValue ?? []
                events += batch
                next = page["next"] ?? .null
                cursor = Self.sequence(of: batch.last) ?? cursor
                if batch.isEmpty || next.isNull { break }
            }

            if context.json && !follow {
                Console.out(JSONValue.object(["events": .array(events), "next": next]).jsonText)
                return
            }
            if context.json {
                for event in events { Console.out(event.jsonText) }
            } else {
                Console.out(Self.table(events, fixedWidths: follow).render())
            }
            guard follow else { return }

            while true {
                let page = try context.read(
                    "readLedger", ["after": .number(String(cursor)), "limit": .number(String(Self.pageLimit))], on: &connection)
                let batch = page["events"]?.arrayValue ?? []
                if !batch.isEmpty {
                    if context.json {
                        for event in batch { Console.out(event.jsonText) }
                    } else {
                        Console.out(Self.table(batch, fixedWidths: true).render(header: false))
                    }
                    cursor = Self.sequence(of: batch.last) ?? cursor
                }
                let more = !batch.isEmpty && !(page["next"]?.isNull ?? true)
                if !more { Console.sleep(milliseconds: intervalMillis) }
            }
        }
    }

    static func sequence(of event: JSONValue?) -> Int? {
        event?["sequence"]?.numberText.flatMap { Int($0) }
    }

    /// The events as a table; with `fixedWidths` every batch gets the same column widths, so
    /// rows printed later line up under the first header.
    static func table(_ events: [JSONValue], fixedWidths: Bool) -> TableFormatter {
        let rows = events.map { event in
            [
                Display.cell(event["sequence"]), Display.cell(event["type"]), Display.cell(event["recordedAt"]),
                String(Display.cell(event["hash"]).prefix(hashPrefixLength)), Display.cell(event["data"]),
            ]
        }
        var widths = [3, 4, 11, hashPrefixLength]  // the titles' lengths
        if fixedWidths {
            widths = [7, 31, 27, hashPrefixLength]  // a sequence in the millions, the longest event type, an ISO time in µs
        }
        for row in rows {
            for index in widths.indices { widths[index] = max(widths[index], row[index].count) }
        }
        let separators = TableFormatter.separator.count * 4
        let dataWidth = max(dataWidthMin, lineWidthMax - widths.reduce(0, +) - separators)
        var table = TableFormatter(columns: [
            .init("SEQ", alignment: .right, widthMin: widths[0]),
            .init("TYPE", alignment: .left, widthMin: widths[1]),
            .init("RECORDED AT", alignment: .left, widthMin: widths[2]),
            .init("HASH", alignment: .left, widthMin: widths[3]),
            .init("DATA", alignment: .left, widthMax: dataWidth),
        ])
        for row in rows { table.append(row) }
        return table
    }
}
