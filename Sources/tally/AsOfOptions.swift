import ArgumentParser
import TallyProtocol

/// `--as-of TIME` or `--as-of-sequence N`: a read as the ledger stood then (the params' `asOf`).
struct AsOfOptions: ParsableArguments {
    @Option(name: .customLong("as-of"), help: ArgumentHelp("As the ledger stood at this past time (RFC 3339; not after now).", valueName: "time"), transform: Checked.timestamp)
    var time: String?

    @Option(name: .customLong("as-of-sequence"), parsing: .unconditional, help: ArgumentHelp("As the ledger stood after this event.", valueName: "n"))
    var sequence: Int?

    func validate() throws {
        if time != nil && sequence != nil { throw ValidationError("give --as-of or --as-of-sequence, not both.") }
        if let sequence, sequence < 1 { throw ValidationError("--as-of-sequence must be at least 1.") }
    }

    /// The `asOf` param, if one was given.
    var param: JSONValue? {
        if let time { return .string(time) }
        if let sequence { return .object(["sequence": .number(String(sequence))]) }
        return nil
    }

    /// The line saying which point of the ledger a result answered for, if it did.
    static func note(_ result: JSONValue) -> String? {
        guard let asOf = result["asOf"] else { return nil }
        return "as of sequence \(Display.cell(asOf["sequence"])) (\(Display.cell(asOf["timestamp"])))"
    }
}
