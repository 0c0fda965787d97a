import ArgumentParser
import TallyClient
import TallyProtocol

/// `tally events send`: an NDJSON file of raw events, sent as pipelined reportEvent batches.
struct EventsSendCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Send raw events from an NDJSON file (one reportEvent event object per line).",
        discussion: """
            Each line is an event: {"customerId": …, "eventName": …, "idempotencyKey": …, \
            "dimensions"?: {…}, "resourceId"?: …, "timestamp"?: …}. Blank lines are skipped; a line \
            that is not a JSON object is reported with its number and not sent.
            Events go in reportEvent calls of --batch events, --pipeline calls in flight on one \
            connection. Resending a file is safe: events whose idempotencyKey was seen count as \
            duplicates.
            Prints accepted, duplicates and rejected counts, then the first rejections by line number.
            A call refused with STORAGE_UNAVAILABLE (2001: a full disk, an I/O error) stops the send: \
            the calls in flight are answered, the rest of the file is not sent, and resending it \
            once the daemon writes again applies what is missing, once.
            Exit status: 0 every event was accepted or a duplicate, 1 some were rejected, invalid or \
            refused, 2 the daemon could not be reached or the connection failed (resend the file), \
            64 bad usage.
            """)

    /// What happened to the events so far.
    struct Counts: Equatable {
        var lines = 0
        var accepted = 0
        var duplicates = 0
        var rejected = 0
        var invalid = 0
        /// Events in batches the daemon refused as a whole.
        var failed = 0
    }

    /// One reportEvent call: its events (serialized, comma-separated) and their line numbers.
    struct Batch {
        var body: [UInt8] = []
        var lines: [Int] = []
        var attempts = 0
    }

    struct Problem {
        var line: Int
        var code: Int?
        var message: String
        var json: JSONValue {
            var object: JSONObject = ["line": .integer(line)]
            if let code { object["code"] = .integer(code) }
            object["message"] = .string(message)
            return .object(object)
        }
    }

    /// Stays under the daemon's default 1 MiB frame limit with room for the envelope.
    static let batchBytesMax = 768 * 1024
    /// How deep one event may nest: the daemon parses a request to 64 levels (`limits.jsonDepthMax`
    /// by default), and a call holds each event 3 levels down (request, params, events). A deeper
    /// line is reported on its own: sent, it would fail its whole call, and close the connection.
    static let eventDepthMax = 64 - 3
    /// Rejections and invalid lines kept for the report (the counts are always complete).
    static let problemsKept = 1000
    /// Shown in the human summary.
    static let problemsShown = 10
    static let overloadedRetriesMax = 10
    /// Reading the input for this long leaves the connection unused long enough to count as a
    /// pause: the daemon may close it as idle (its `idleTimeoutSeconds` is at least 1).
    static let quietInput = Duration.milliseconds(500)
    static let overloadedCode = 2002
    static let storageUnavailableCode = 2001

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The NDJSON file; - reads standard input.", valueName: "file.jsonl"))
    var file: String

    @Option(parsing: .unconditional, help: "Events per reportEvent call (at most \(UsageMethods.eventsPerCallMax)).")
    var batch: Int = 1000

    @Option(parsing: .unconditional, help: "reportEvent calls in flight at once on the connection.")
    var pipeline: Int = 4

    func validate() throws {
        guard (1...UsageMethods.eventsPerCallMax).contains(batch) else {
            throw ValidationError("--batch must be 1 to \(UsageMethods.eventsPerCallMax).")
        }
        guard (1...64).contains(pipeline) else { throw ValidationError("--pipeline must be 1 to 64.") }
    }

    func run() throws {
        let reader: NDJSONReader
        do {
            reader = try NDJSONReader(path: file)
        } catch {
            Console.error("error: \(error.message)")
            throw ExitCode.validationFailure
        }
        let context = TallyCommandContext(global)
        var sender = Sender(batchSize: batch, pipeline: pipeline, reader: reader)
        try context.run { connection in
            do {
                try sender.run(connection, reconnect: context.connect)
            } catch let error as Sender.InputError {
                // The file, not the daemon: what was sent so far stands; exit 64.
                sender.progress.finish(bytesRead: sender.reader.bytesRead, sender.counts)
                Console.out(sender.report(json: context.json))
                Console.error("error: \(file): \(error.message) (after line \(sender.counts.lines); the lines before it were sent)")
                throw ExitCode.validationFailure
            } catch let error as ClientError {
                sender.progress.finish(bytesRead: sender.reader.bytesRead, sender.counts)
                Console.out(sender.report(json: context.json))
                let unknown = sender.inFlightEvents
                if unknown > 0 {
                    Console.error("error: the outcome of \(unknown) events in flight is unknown; resending the file is safe")
                }
                throw error
            }
            sender.progress.finish(bytesRead: sender.reader.bytesRead, sender.counts)
            Console.out(sender.report(json: context.json))
            if let stopped = sender.stoppedBy {
                Console.error("error: the daemon cannot write (\(stopped.message)); sending stopped after line \(sender.lastLineSent): the refused calls' events may or may not be in the ledger, the lines after were not sent. Resend the file when the daemon writes again: what is there counts as duplicates")
            }
        }
        let counts = sender.counts
        if counts.rejected + counts.invalid + counts.failed > 0 { throw ExitCode(1) }
    }

    /// Reads, batches, sends and tallies; one per command run.
    struct Sender {
        let batchSize: Int
        let pipeline: Int
        let reader: NDJSONReader
        let progress: EventsProgress
        var counts = Counts()
        var rejections: [Problem] = []
        var invalidLines: [Problem] = []
        var failedBatches: [JSONValue] = []
        private var inFlight: [(id: Int, batch: Batch)] = []
        private var nextId = 1
        private var inputDone = false
        /// The STORAGE_UNAVAILABLE refusal that stopped the send: on a daemon that cannot write,
        /// every further call would fail the same way.
        private(set) var stoppedBy: RPCError?
        /// The last line of the last batch sent.
        private(set) var lastLineSent = 0
        /// An event read that did not fit the batch being built: the first of the next one.
        private var carried: (line: Int, bytes: [UInt8])?

        /// The input could not be read (a directory, an I/O error): reported as bad usage.
        struct InputError: Error { let message: String }

        init(batchSize: Int, pipeline: Int, reader: NDJSONReader) {
            self.batchSize = batchSize
            self.pipeline = pipeline
            self.reader = reader
            progress = EventsProgress(totalBytes: reader.totalBytes)
        }

        var inFlightEvents: Int { inFlight.reduce(0) { $0 + $1.batch.lines.count } }

        /// Sends everything on `connection`. A daemon closes a connection that stays idle past
        /// its `idleTimeoutSeconds` (a pipe that is quiet for a while, also while replies wait to
        /// be read): when the connection ends after such a pause, the replies it still holds are
        /// read, `reconnect` gives a new one and the batches still in flight go again (their
        /// events' keys make that safe), once per pause.
        mutating func run(_ first: TallyConnection, reconnect: () throws -> TallyConnection) throws {
            var connection = first
            // The id of the first batch sent after the connection was last left unused (the input
            // was quiet, or nothing was in flight), until a reply to one sent since then proves
            // the connection alive. Replies to earlier batches, buffered before a close, prove nothing.
            var pausedFrom: Int?
            defer { if connection !== first { connection.close() } }
            while true {
                var sending = false, receiving = false
                do {
                    while inFlight.count < pipeline, stoppedBy == nil {
                        let reading = ContinuousClock.now
                        guard let batch = try nextBatch() else { break }
                        if inFlight.isEmpty || ContinuousClock.now - reading >= EventsSendCommand.quietInput { pausedFrom = nextId }
                        sending = true
                        try send(batch, on: connection)
                        sending = false
                    }
                    guard !inFlight.isEmpty else { return }
                    guard let line = try connection.readLine() else { throw ClientError.closed }
                    let sentSincePause = pausedFrom.map { from in inFlight.count(where: { $0.id >= from }) } ?? 0
                    receiving = true
                    try receive(line, on: connection)
                    receiving = false
                    if let from = pausedFrom, inFlight.count(where: { $0.id >= from }) < sentSincePause { pausedFrom = nil }
                } catch let error as ClientError {
                    let endedAfterPause: Bool
                    switch error {
                    // (A refusal that ends the connection, met while receiving, is no pause.)
                    case .closed, .io: endedAfterPause = pausedFrom != nil && !receiving
                    case .connectFailed, .protocolViolation: endedAfterPause = false
                    }
                    guard endedAfterPause else { throw error }
                    // A send that failed on a connection the daemon closed: the replies it wrote
                    // before closing are still there to read (a reading error already read them).
                    if sending {
                        while !inFlight.isEmpty, let line = try? connection.readLine() { try receive(line, on: connection) }
                    }
                    connection = try resend(reconnect)
                    pausedFrom = nil
                    continue
                }
                progress.update(bytesRead: reader.bytesRead, counts)
            }
        }

        /// A new connection with every batch in flight sent again on it, in order.
        private mutating func resend(_ reconnect: () throws -> TallyConnection) throws -> TallyConnection {
            let connection = try reconnect()
            for entry in inFlight { try connection.sendLine(Self.request(id: entry.id, entry.batch)) }
            return connection
        }

        static func request(id: Int, _ batch: Batch) -> [UInt8] {
            var request = Array(#"{"jsonrpc":"2.0","id":"#.utf8) + Array(String(id).utf8)
            request += Array(#","method":"reportEvent","params":{"events":["#.utf8)
            request += batch.body
            request += Array("]}}".utf8)
            return request
        }

        /// The next batch of valid events, nil at the end of the input.
        private mutating func nextBatch() throws -> Batch? {
            var batch = Batch()
            if let carried {
                batch.body = carried.bytes
                batch.lines = [carried.line]
                self.carried = nil
            }
            guard !inputDone else { return batch.lines.isEmpty ? nil : batch }
            while batch.lines.count < batchSize {
                let line: ArraySlice<UInt8>?
                do {
                    line = try reader.nextLine()
                } catch {
                    throw InputError(message: error.message)
                }
                guard let line else {
                    inputDone = true
                    break
                }
                counts.lines = reader.lineNumber
                guard line.contains(where: { $0 != 0x20 && $0 != 0x09 }) else { continue }
                let event: JSONValue
                do {
                    event = try JSONParser.parse(Array(line), depthMax: EventsSendCommand.eventDepthMax)
                } catch where error.kind == .depthExceeded {
                    invalid(reader.lineNumber, "the event nests deeper than \(EventsSendCommand.eventDepthMax) levels, the most the daemon reads inside a call")
                    continue
                } catch {
                    invalid(reader.lineNumber, "not valid JSON: \(error)")
                    continue
                }
                guard event.objectValue != nil else {
                    invalid(reader.lineNumber, "an event must be a JSON object, not \(event.typeName)")
                    continue
                }
                let bytes = event.serialized()
                guard bytes.count <= EventsSendCommand.batchBytesMax else {
                    invalid(reader.lineNumber, "the event is \(bytes.count) bytes; at most \(EventsSendCommand.batchBytesMax)")
                    continue
                }
                // The batch stays under batchBytesMax with this event, or it goes without it.
                if !batch.lines.isEmpty, batch.body.count + 1 + bytes.count > EventsSendCommand.batchBytesMax {
                    carried = (reader.lineNumber, bytes)
                    break
                }
                if !batch.lines.isEmpty { batch.body.append(UInt8(ascii: ",")) }
                batch.body += bytes
                batch.lines.append(reader.lineNumber)
            }
            return batch.lines.isEmpty ? nil : batch  // empty only at the end of the input
        }

        private mutating func invalid(_ line: Int, _ message: String) {
            counts.invalid += 1
            if invalidLines.count < EventsSendCommand.problemsKept { invalidLines.append(Problem(line: line, code: nil, message: message)) }
        }

        private mutating func send(_ batch: Batch, on connection: TallyConnection) throws {
            let id = nextId
            nextId += 1
            inFlight.append((id, batch))
            lastLineSent = max(lastLineSent, batch.lines.last ?? 0)
            try connection.sendLine(Self.request(id: id, batch))
        }

        /// Tallies one response; a batch refused with OVERLOADED is sent again after a pause.
        private mutating func receive(_ line: [UInt8], on connection: TallyConnection) throws {
            guard let response = try? JSONParser.parse(line, depthMax: 512), let object = response.objectValue else {
                throw ClientError.protocolViolation("unparsable response: \(String(decoding: line.prefix(200), as: UTF8.self))")
            }
            let id = object["id"] ?? .null
            if id.isNull, let error = object["error"] {
                // The daemon refused a frame and closes the connection: nothing in flight was applied.
                let rpcError = Self.rpcError(error)
                for entry in inFlight { fail(entry.batch, rpcError) }
                inFlight.removeAll()
                // Never silently: the rest of the file was not sent.
                Console.error("error: the daemon closed the connection (\(rpcError.message)); lines after \(counts.lines) were not read or sent")
                throw ClientError.closed
            }
            guard let position = inFlight.firstIndex(where: { id.numberText == String($0.id) }) else {
                throw ClientError.protocolViolation("unexpected response id \(id.jsonText)")
            }
            var batch = inFlight.remove(at: position).batch
            if let error = object["error"] {
                let rpcError = Self.rpcError(error)
                if rpcError.code == EventsSendCommand.overloadedCode, batch.attempts < EventsSendCommand.overloadedRetriesMax {
                    batch.attempts += 1
                    Console.sleep(milliseconds: min(2000, 50 << batch.attempts))
                    try send(batch, on: connection)
                } else {
                    if rpcError.code == EventsSendCommand.storageUnavailableCode, stoppedBy == nil { stoppedBy = rpcError }
                    fail(batch, rpcError)
                }
                return
            }
            let result = object["result"] ?? .null
            counts.accepted += result["accepted"]?.numberText.flatMap { Int($0) } ?? 0
            counts.duplicates += result["duplicates"]?.numberText.flatMap { Int($0) } ?? 0
            for rejection in result["rejected"]?.arrayValue ?? [] {
                counts.rejected += 1
                guard rejections.count < EventsSendCommand.problemsKept else { continue }
                let index = rejection["index"]?.numberText.flatMap { Int($0) } ?? -1
                let lineNumber = batch.lines.indices.contains(index) ? batch.lines[index] : 0
                // The daemon names the event by its place in the call; the line says which one of
                // the file it is.
                rejections.append(Problem(
                    line: lineNumber, code: rejection["code"]?.numberText.flatMap { Int($0) },
                    message: Display.withoutCallIndex(rejection["message"]?.stringValue ?? "", array: "events", index: index, item: "the event")))
            }
        }

        private mutating func fail(_ batch: Batch, _ error: RPCError) {
            counts.failed += batch.lines.count
            guard failedBatches.count < EventsSendCommand.problemsKept else { return }
            var entry: JSONObject = [
                "firstLine": .integer(batch.lines.first ?? 0), "lastLine": .integer(batch.lines.last ?? 0),
                "events": .integer(batch.lines.count), "code": .integer(error.code), "message": .string(error.message),
            ]
            if let reason = error.reason { entry["reason"] = .string(reason) }
            failedBatches.append(.object(entry))
        }

        static func rpcError(_ error: JSONValue) -> RPCError {
            RPCError(
                code: error["code"]?.numberText.flatMap { Int($0) } ?? 0, message: error["message"]?.stringValue ?? "",
                data: error["data"])
        }

        /// The summary: one JSON object with `json`, else counts and the first problems as tables.
        func report(json: Bool) -> String {
            let elapsed = progress.elapsedSeconds
            if json {
                return JSONValue.object([
                    "lines": .integer(counts.lines), "accepted": .integer(counts.accepted),
                    "duplicates": .integer(counts.duplicates), "rejected": .integer(counts.rejected),
                    "invalid": .integer(counts.invalid), "failed": .integer(counts.failed),
                    "rejections": .array(rejections.map(\.json)), "invalidLines": .array(invalidLines.map(\.json)),
                    "failedBatches": .array(failedBatches),
                    "stopped": stoppedBy.map { .object(["code": .integer($0.code), "message": .string($0.message), "afterLine": .integer(lastLineSent)]) } ?? .null,
                ]).jsonText
            }
            let answered = counts.accepted + counts.duplicates + counts.rejected
            let tenths = Int((elapsed * 10).rounded())
            var rows: [(String, String)] = [
                ("accepted", String(counts.accepted)), ("duplicates", String(counts.duplicates)),
                ("rejected", String(counts.rejected)),
            ]
            if counts.invalid > 0 { rows.append(("invalid", "\(counts.invalid) (lines not sent)")) }
            if counts.failed > 0 { rows.append(("failed", "\(counts.failed) (in calls the daemon refused)")) }
            rows.append(("lines", String(counts.lines)))
            rows.append(("elapsed", "\(tenths / 10).\(tenths % 10) s (\(Int(Double(answered) / max(elapsed, 0.001))) events/s)"))
            var text = TableFormatter.keyValue(rows)
            text += Self.problems("rejections", rejections, total: counts.rejected)
            text += Self.problems("invalid lines", invalidLines, total: counts.invalid)
            if !failedBatches.isEmpty {
                var table = TableFormatter(["LINES", "EVENTS", "CODE", "ERROR"])
                for entry in failedBatches.prefix(EventsSendCommand.problemsShown) {
                    table.append([
                        "\(Display.cell(entry["firstLine"]))-\(Display.cell(entry["lastLine"]))", Display.cell(entry["events"]),
                        Display.cell(entry["code"]),
                        Display.cell(entry["message"]) + (entry["reason"].map { " (\(Display.cell($0)))" } ?? ""),
                    ])
                }
                text += "\n\nrefused calls (first \(min(failedBatches.count, EventsSendCommand.problemsShown)) of \(failedBatches.count)):\n"
                text += table.render()
            }
            return text
        }

        static func problems(_ title: String, _ problems: [Problem], total: Int) -> String {
            guard !problems.isEmpty else { return "" }
            let shown = problems.prefix(EventsSendCommand.problemsShown)
            let withCodes = shown.contains { $0.code != nil }
            var table = TableFormatter(
                columns: [.init("LINE", alignment: .right)] + (withCodes ? [.init("CODE", alignment: .right)] : []) + [.init("MESSAGE")])
            for problem in shown {
                table.append([String(problem.line)] + (withCodes ? [problem.code.map(String.init) ?? ""] : []) + [problem.message])
            }
            return "\n\n\(title) (first \(shown.count) of \(total)):\n" + table.render()
        }
    }
}
