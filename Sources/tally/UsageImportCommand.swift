import ArgumentParser
import Foundation
import TallyClient
import TallyProtocol

/// `tally usage import`: importRecords from a file of records in a vendor's schema.
struct UsageImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import usage records taken verbatim in the Stigg, Octane, Paigo or CloudEvents schema.",
        discussion: """
            FILE holds one JSON record per line (NDJSON) or one JSON array of records; - reads \
            standard input. The records go in importRecords calls of at most --batch records (and \
            under the daemon's 1 MiB line limit); each record \
            succeeds or fails on its own. Importing the same records again answers duplicates for \
            records that carry a key: STIGG (its id), OCTANE with an id, CLOUDEVENTS (source and \
            id); PAIGO records without an idempotencyKey and OCTANE records without an id have \
            none, and are counted again. \
            Prints the accepted, duplicate and rejected counts, then each rejection by record \
            number (1-based, across the whole file) with the daemon's error code. With --json: \
            {records, accepted, duplicates, rejected: [{record, code, message}]} over all the calls \
            (`tally call importRecords` gives one call's raw result, measurements included).
            Exit status: 0 every record was accepted or a duplicate, 1 some were rejected or a call \
            failed, 2 the daemon could not be reached, 64 bad usage or input that is not JSON.
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The records' schema: STIGG, OCTANE, PAIGO or CLOUDEVENTS.")
    var format: String

    @Argument(help: "The file of records, or - for standard input.")
    var file: String

    @Option(parsing: .unconditional, help: "Records per importRecords call (1–\(ImportFormats.recordsMax)).")
    var batch = 500

    func validate() throws {
        guard ImportFormat(rawValue: format.uppercased()) != nil else {
            throw ValidationError("FORMAT must be one of \(ImportFormat.allCases.map(\.rawValue).joined(separator: ", ")), got '\(format)'.")
        }
        guard (1...ImportFormats.recordsMax).contains(batch) else {
            throw ValidationError("--batch must be 1 to \(ImportFormats.recordsMax), got \(batch).")
        }
    }

    func run() throws {
        let records: [JSONValue]
        do {
            records = try Self.records(in: file)
        } catch {
            Console.error("tally usage import: \(error.message)")
            throw ExitCode.validationFailure
        }
        guard !records.isEmpty else {
            Console.error("tally usage import: \(file) holds no records")
            throw ExitCode.validationFailure
        }
        let context = TallyCommandContext(global)
        var accepted = 0, duplicates = 0
        let (chunks, oversized) = Self.chunks(records, recordsMax: batch)
        var rejections: [(record: Int, code: JSONValue, message: String)] = oversized.map { index in
            (index + 1, .null, "not sent: the record is \(records[index].jsonText.utf8.count) bytes, over the \(Self.chunkBytesMax) a call may carry")
        }
        try context.run { connection in
            for chunk in chunks {
                let result: JSONValue
                do {
                    result = try connection.call("importRecords", ["format": .string(format.uppercased()), "records": .array(chunk.map { records[$0] })])
                } catch let error as RPCError {
                    // The call as a whole was refused: each of its records with the reason.
                    rejections += chunk.map { ($0 + 1, .integer(error.code), "\(error)") }
                    continue
                }
                accepted += Int(result["accepted"]?.numberText ?? "") ?? 0
                duplicates += Int(result["duplicates"]?.numberText ?? "") ?? 0
                for rejection in result["rejected"]?.arrayValue ?? [] {
                    let index = Int(rejection["index"]?.numberText ?? "") ?? 0
                    // The daemon names the record by its place in the call; the line says which
                    // record of the file it is.
                    let message = Display.withoutCallIndex(rejection["message"]?.stringValue ?? "", array: "records", index: index, item: "the record")
                    rejections.append(((chunk.indices.contains(index) ? chunk[index] : 0) + 1, rejection["code"] ?? .null, message))
                }
            }
            rejections.sort { $0.record < $1.record }
            let summary: JSONValue = [
                "records": .integer(records.count), "accepted": .integer(accepted), "duplicates": .integer(duplicates),
                "rejected": .array(rejections.map { ["record": .integer($0.record), "code": $0.code, "message": .string($0.message)] }),
            ]
            context.output(summary) {
                var text = TableFormatter.keyValue([
                    ("records", String(records.count)), ("accepted", String(accepted)),
                    ("duplicates", String(duplicates)), ("rejected", String(rejections.count)),
                ])
                for rejection in rejections {
                    let code = rejection.code.isNull ? "" : " (code \(Display.cell(rejection.code)))"
                    text += "\nrecord \(rejection.record): \(rejection.message)\(code)"
                }
                return text
            }
        }
        if !rejections.isEmpty { throw ExitCode(1) }
    }

    /// A request line must stay under the daemon's frame limit (1 MiB by default): calls hold at
    /// most `recordsMax` records and about this many bytes of them, as `events send` does.
    static var chunkBytesMax: Int { EventsSendCommand.batchBytesMax }

    /// The record indexes of each call: up to `recordsMax` records, and a new call before the
    /// bytes of the records would pass `chunkBytesMax`. A record larger than that on its own is
    /// not sent (`oversized`): it could only fail the call, and the connection with it.
    static func chunks(_ records: [JSONValue], recordsMax: Int) -> (chunks: [[Int]], oversized: [Int]) {
        var chunks: [[Int]] = [], oversized: [Int] = []
        var current: [Int] = [], bytes = 0
        for (index, record) in records.enumerated() {
            let size = record.jsonText.utf8.count + 1
            guard size <= chunkBytesMax else {
                oversized.append(index)
                continue
            }
            if !current.isEmpty, current.count == recordsMax || bytes + size > chunkBytesMax {
                chunks.append(current)
                current = []
                bytes = 0
            }
            current.append(index)
            bytes += size
        }
        if !current.isEmpty { chunks.append(current) }
        return (chunks, oversized)
    }

    /// The records of an NDJSON file, or of a file holding one JSON array.
    static func records(in path: String) throws(NDJSONReaderError) -> [JSONValue] {
        let reader = try NDJSONReader(path: path)
        var lines: [ArraySlice<UInt8>] = []
        while let line = try reader.nextLine() { lines.append(line) }
        let isBlank: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
        let firstByte = lines.lazy.compactMap { $0.first(where: { !isBlank($0) }) }.first
        if firstByte == UInt8(ascii: "[") {
            var whole: [UInt8] = []
            for line in lines { whole += line; whole.append(0x0A) }
            // The array is one level above its records.
            guard let array = (try? JSONParser.parse(whole, depthMax: EventsSendCommand.eventDepthMax + 1))?.arrayValue else {
                throw NDJSONReaderError(message: "\(path) is not a JSON array of records")
            }
            return array
        }
        var records: [JSONValue] = []
        for (number, line) in lines.enumerated() where line.contains(where: { !isBlank($0) }) {
            do {
                // As `events send`: deeper, the record would fail its whole call.
                records.append(try JSONParser.parse(Array(line), depthMax: EventsSendCommand.eventDepthMax))
            } catch {
                throw NDJSONReaderError(message: "line \(number + 1) of \(path) is not JSON: \(error)")
            }
        }
        return records
    }
}
