import Foundation
import Logging
import TallyCore
import TallyEngine
import TallyProtocol
import TallyStorage

/// Turns request lines into reply lines: envelope checks, method lookup, params, the engine, and
/// results. No business rules live here.
final class Dispatcher: Sendable {
    /// What getStatus reports about the process.
    struct ServerInfo: Sendable {
        var dataDirectory: String
        var socketPath: String
        var startedAt: Timestamp
        var pid: Int32
        /// For the uptime: monotonic, whatever the ledger's clock does.
        var started = ContinuousClock.now
    }

    typealias Reply = @Sendable ([UInt8]?) -> Void

    let ledger: Ledger
    let limits: ServerLimits
    let info: ServerInfo
    let connections: ConnectionRegistry
    let logger: Logger
    /// By bytes: a method name is matched exactly ("listDimension\u{212A}eys", with a KELVIN
    /// SIGN, is no method), not by String's canonical equivalence.
    private let methods: [ByteExactString: Method]

    /// How a method runs: a command goes through the single writer; a query reads committed state.
    enum Method {
        case command(@Sendable (JSONObject) throws(RPCFailure) -> (Command, idempotencyKey: String?))
        /// Point reads (the status, a customer, a balance, an entitlement: microseconds) run on
        /// the connection's event loop.
        case query(@Sendable (Dispatcher, JSONObject) throws -> JSONValue)
        /// Long reads (a range, a list, a long reply) run off the event loops so they starve no
        /// one, each connection's one at a time.
        case slowQuery(@Sendable (Dispatcher, JSONObject) throws -> JSONValue)
        /// A read that replays the log or copies the database (verifyLedger, createSnapshot):
        /// off the event loops like a slowQuery, on the few threads of the heavy lane.
        case heavyQuery(@Sendable (Dispatcher, JSONObject) throws -> JSONValue)
        /// A read whose cost depends on its params (`asOf` replays the log) or on some data (a
        /// pool with many grants): the predicate says where it runs, looking at the params and at
        /// most a few point reads, never at the data it would bound.
        case queryPlaced(@Sendable (Dispatcher, JSONObject) -> ReadPlace, @Sendable (Dispatcher, JSONObject) throws -> JSONValue)
        /// Several commands that succeed or fail each on their own (reportUsageBulk, importRecords),
        /// combined into one result in their order.
        case fanOut(@Sendable (JSONObject) throws(RPCFailure) -> FanOut)

        /// A read: it changes nothing, so a batch may leave its result out (`BatchReply`).
        var isRead: Bool {
            switch self {
            case .query, .slowQuery, .heavyQuery, .queryPlaced: true
            case .command, .fanOut: false
            }
        }
    }

    /// Where a read runs.
    enum ReadPlace {
        /// On the connection's event loop: a point read.
        case inline
        /// On the shared threads off the loops: a range, a list, a long reply.
        case offLoop
        /// On the heavy lane: a replay of the log or a copy of the database, which take a core
        /// for seconds. The lane runs `heavyReadsMax` of them at once (daemon-wide, in arrival
        /// order), so clients looping on replays leave the other cores to everyone else's reads.
        case heavy
    }

    /// Heavy reads at once: half the cores, at least one.
    static let heavyReadsMax = max(1, ProcessInfo.processInfo.activeProcessorCount / 2)

    /// The heavy lane (`ReadPlace.heavy`).
    private let heavyLane: OperationQueue = {
        let queue = OperationQueue()
        queue.name = "tally.heavy-reads"
        queue.maxConcurrentOperationCount = Dispatcher.heavyReadsMax
        return queue
    }()

    /// The commands of a fan-out method and how their replies become one result.
    struct FanOut: Sendable {
        /// Each command with its idempotency key and the (method, params) its key is bound to;
        /// an item that failed validation carries its error instead.
        var items: [Result<(command: Command, key: String?, method: String, params: JSONObject), RPCFailure>]
        var combine: @Sendable ([Result<JSONValue, RPCFailure>]) -> JSONValue
    }

    init(ledger: Ledger, limits: ServerLimits, info: ServerInfo, connections: ConnectionRegistry, logger: Logger, extraMethods: [String: Method] = [:]) {
        self.ledger = ledger
        self.limits = limits
        self.info = info
        self.connections = connections
        self.logger = logger
        let all = MethodTable.methods.merging(extraMethods) { _, _ in preconditionFailure("a method is registered twice") }
        self.methods = Dictionary(uniqueKeysWithValues: all.map { (ByteExactString($0.key), $0.value) })
    }

    static var methodNames: [String] { MethodTable.methods.keys.sorted() }

    /// Handles one line (without its newline). `reply` is called exactly once, from any thread,
    /// with the reply line (newline included) or nil when nothing is to be sent.
    /// - Returns: whether a read of the line runs off the event loops (a slow query), so the
    ///   connection may hold its later lines until it is answered.
    func handle(line: UnsafeRawBufferPointer, session: Session, reply: @escaping Reply) -> Bool {
        let parsed: JSONParser.Line
        do {
            parsed = try JSONParser.parseLine(line, depthMax: limits.jsonDepthMax)
        } catch {
            reply(Self.encode(RPCResponse.failure(id: .null, error: Self.failure(error))))
            return false
        }
        let elements: [Result<JSONValue, JSONError>]
        switch parsed {
        case .value(let value):
            return handle(element: value, session: session) { response, _ in reply(response.map(Self.encode)) }
        case .batch(let batch):
            elements = batch
        }
        guard !elements.isEmpty else {
            reply(Self.encode(RPCResponse.failure(id: .null, error: .invalidRequest("an empty batch"))))
            return false
        }
        guard elements.count <= limits.batchRequestsMax else {
            reply(Self.encode(RPCResponse.failure(id: .null, error: .invalidRequest("a batch of \(elements.count) requests exceeds the limit of \(limits.batchRequestsMax)"))))
            return false
        }
        let collector = BatchReply(count: elements.count, bytesMax: limits.batchReplyBytesMax, reply: reply)
        var readsOffLoop = false
        for (index, element) in elements.enumerated() {
            switch element {
            case .success(let value):
                // A read whose turn comes once the reply is full is not run (its result would be
                // left out anyway).
                if handle(element: value, session: session, skipRead: { collector.isFull }, done: { collector.set(index, $0, readID: $1) }) { readsOffLoop = true }
            case .failure(let error):
                // A duplicate key: that element is an invalid request, the others still run.
                collector.set(index, RPCResponse.failure(id: .null, error: Self.failure(error)), readID: nil)
            }
        }
        return readsOffLoop
    }

    /// A line that is not JSON is a parse error; JSON with a duplicate key an invalid request.
    private static func failure(_ error: JSONError) -> RPCFailure {
        error.kind == .duplicateKey ? .invalidRequest(error.description) : .parseError(error.description)
    }

    /// Handles one request object; `done` gets its response, or nil for a notification, and for
    /// the result of a read (which changed nothing, so can be asked again) the request's id.
    /// - Returns: whether it is a read that runs off the event loops.
    private func handle(
        element: JSONValue, session: Session, skipRead: (@Sendable () -> Bool)? = nil, done: @escaping @Sendable (JSONValue?, _ readID: RPCID?) -> Void
    ) -> Bool {
        let request: RPCRequest
        switch RPCRequest.parse(element) {
        case .success(let r): request = r
        case .failure(let error):
            // Not `cond ? nil : …`: JSONValue is ExpressibleByNilLiteral, so that would send `null`.
            if error.isNotification {
                done(Optional<JSONValue>.none, nil)
                return false
            }
            done(RPCResponse.failure(id: error.id, error: error.failure), nil)
            return false
        }
        let isRead = methods[ByteExactString(request.method)]?.isRead ?? false
        let respond: @Sendable (Result<JSONValue, RPCFailure>) -> Void = { result in
            guard let id = request.id else { return done(nil, nil) }
            switch result {
            case .success(let value): done(RPCResponse.success(id: id, result: value), isRead ? id : nil)
            case .failure(let failure): done(RPCResponse.failure(id: id, error: failure), nil)
            }
        }
        guard let method = methods[ByteExactString(request.method)] else {
            respond(.failure(.methodNotFound(request.method)))
            return false
        }
        switch method {
        case .command(let decode):
            let command: Command
            let key: String?
            do {
                (command, key) = try decode(request.params)
            } catch {
                respond(.failure(error))
                return false
            }
            let claim = key.map { IdempotencyClaim(key: $0, fingerprint: Self.fingerprint(method: request.method, params: request.params)) }
            let (ledger, store) = (ledger, ledger.store)
            session.submitCommands(1) {
                ledger.submit(command, idempotency: claim) { reply in
                    // Render on the connection's event loop, not on the writer thread.
                    session.execute {
                        respond(MethodTable.render(reply, store: store))
                        session.commandFinished()
                    }
                }
            }
        case .fanOut(let plan):
            let fanOut: FanOut
            do {
                fanOut = try plan(request.params)
            } catch {
                respond(.failure(error))
                return false
            }
            let collector = ResultCollector(count: fanOut.items.count) { results in respond(.success(fanOut.combine(results))) }
            var calls: [(index: Int, command: Command, claim: IdempotencyClaim?)] = []
            for (index, item) in fanOut.items.enumerated() {
                switch item {
                case .failure(let failure):
                    collector.set(index, .failure(failure))
                case .success(let call):
                    calls.append((index, call.command, call.key.map { IdempotencyClaim(key: $0, fingerprint: Self.fingerprint(method: call.method, params: call.params)) }))
                }
            }
            let (ledger, store, submitted) = (ledger, ledger.store, calls)
            // The items go to the writer together, in order, so they share its groups.
            session.submitCommands(submitted.count) {
                for call in submitted {
                    ledger.submit(call.command, idempotency: call.claim) { reply in
                        // Rendered off the event loops too (thousands of items, then one large
                        // combined result): neither the writer nor other connections wait for it.
                        DispatchQueue.global().async {
                            collector.set(call.index, MethodTable.render(reply, store: store))
                            session.commandFinished()
                        }
                    }
                }
            }
        case .query(let run):
            return runInTurn(Self.unless(skipRead, run), request, at: .inline, session: session, respond: respond)
        case .slowQuery(let run):
            return runInTurn(Self.unless(skipRead, run), request, at: .offLoop, session: session, respond: respond)
        case .heavyQuery(let run):
            return runInTurn(Self.unless(skipRead, run), request, at: .heavy, session: session, respond: respond)
        case .queryPlaced(let place, let run):
            return runInTurn(Self.unless(skipRead, run), request, at: place(self, request.params), session: session, respond: respond)
        }
        return false
    }

    /// Runs a query in its turn on the connection: inline on the event loop, or off the event
    /// loops for a long read (the connection's later commands wait until it has read).
    /// - Returns: whether it runs off the event loops.
    private func runInTurn(
        _ run: @escaping @Sendable (Dispatcher, JSONObject) throws -> JSONValue, _ request: RPCRequest, at place: ReadPlace, session: Session,
        respond: @escaping @Sendable (Result<JSONValue, RPCFailure>) -> Void
    ) -> Bool {
        session.runQuery { [self] finished in
            let offLoop: @Sendable () -> Void = { [self] in
                let result = runQuery(run, request)
                finished()
                respond(result)
            }
            // Off the event loops, one connection's one at a time (Session starts a query only
            // when the one before it has finished), so a client pipelining them keeps one thread busy.
            switch place {
            case .inline:
                respond(runQuery(run, request))
                finished()
            case .offLoop: DispatchQueue.global().async(execute: offLoop)
            case .heavy: heavyLane.addOperation(offLoop)
            }
        }
        return place != .inline
    }

    /// `run`, answered OVERLOADED without running when `skip` says so at its turn.
    private static func unless(
        _ skip: (@Sendable () -> Bool)?, _ run: @escaping @Sendable (Dispatcher, JSONObject) throws -> JSONValue
    ) -> @Sendable (Dispatcher, JSONObject) throws -> JSONValue {
        guard let skip else { return run }
        return { dispatcher, params in
            if skip() { throw RPCFailure.overloaded(BatchReply.readLeftOut(dispatcher.limits.batchReplyBytesMax)) }
            return try run(dispatcher, params)
        }
    }

    private func runQuery(_ run: (Dispatcher, JSONObject) throws -> JSONValue, _ request: RPCRequest) -> Result<JSONValue, RPCFailure> {
        do {
            return .success(try run(self, request.params))
        } catch let failure as RPCFailure {
            return .failure(failure)
        } catch let error as StorageError {
            logger.error("read failed", metadata: ["method": "\(request.method)", "error": "\(error)"])
            if error.isDamage { return .failure(.storageUnavailable("the database is damaged: \(error). \(Ledger.restoreAdvice)")) }
            return .failure(.storageUnavailable("the ledger could not be read: \(error)"))
        } catch {
            return .failure(.internalError("\(error)"))
        }
    }

    /// SHA-256 of the method and its canonical params: what an idempotency key is bound to.
    static func fingerprint(method: String, params: JSONObject) -> [UInt8] {
        var bytes = Array(method.utf8)
        bytes.append(0)
        bytes.append(contentsOf: JSONValue.object(params).canonicalSerialized())
        return EventRecord.sha256(bytes)
    }

    static func encode(_ value: JSONValue) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(256)
        value.serialize(into: &bytes)
        bytes.append(UInt8(ascii: "\n"))
        return bytes
    }
}

/// Gathers results that complete in any order, answering once all are in.
final class Collector<Element: Sendable>: @unchecked Sendable {
    // @unchecked: all state is guarded by `lock`.
    private let lock = NSLock()
    private var results: [Element?]
    private var remaining: Int
    private let done: @Sendable ([Element]) -> Void

    init(count: Int, done: @escaping @Sendable ([Element]) -> Void) {
        results = Array(repeating: nil, count: count)
        remaining = count
        self.done = done
        if count == 0 { done([]) }
    }

    func set(_ index: Int, _ result: Element) {
        lock.lock()
        results[index] = result
        remaining -= 1
        let finished = remaining == 0
        lock.unlock()
        if finished { done(results.map { $0! }) }
    }
}

/// A batch's reply line, built as its responses complete in any order (nil for a notification).
/// Its size is bounded: once the responses so far pass `bytesMax`, a read's result that would add
/// to them is replaced by OVERLOADED (the read changed nothing, so it can be asked again; one
/// whose turn comes then is not run), and a command's result by STORAGE_UNAVAILABLE saying it was
/// applied and how to read it (its errors are kept: no outcome is hidden). Without that, a batch
/// of no-op provisionCustomer calls for a customer with thousands of subscriptions made the
/// daemon hold gigabytes of replies (found in review).
final class BatchReply: @unchecked Sendable {
    // @unchecked: all state is guarded by `lock`.
    private let lock = NSLock()
    private var responses: [[UInt8]?]
    private var remaining: Int
    private var bytes = 0
    private let bytesMax: Int
    private let reply: Dispatcher.Reply

    init(count: Int, bytesMax: Int, reply: @escaping Dispatcher.Reply) {
        responses = Array(repeating: nil, count: count)
        remaining = count
        self.bytesMax = bytesMax
        self.reply = reply
    }

    static func readLeftOut(_ bytesMax: Int) -> String {
        "the batch's reply passed the limit of \(bytesMax) bytes, so this read's result was left out; send it again, alone or in a smaller batch"
    }

    var isFull: Bool {
        lock.lock()
        defer { lock.unlock() }
        return bytes >= bytesMax
    }

    func set(_ index: Int, _ response: JSONValue?, readID: RPCID?) {
        lock.lock()
        let full = bytes >= bytesMax
        lock.unlock()
        var response = response
        if full, readID == nil, let id = response?["id"], response?["result"] != nil {
            let failure = RPCFailure.storageUnavailable(
                "this command was applied, but its result was left out: the batch's reply passed the limit of \(bytesMax) bytes. Send it again with the same idempotencyKey to read its result (as a duplicate), or read what it changed")
            response = .object(JSONObject([("jsonrpc", "2.0"), ("id", id), ("error", RPCResponse.errorObject(failure))]))
        }
        // A read past the limit is not even serialized.
        var encoded = readID != nil && full ? nil : response.map(Self.serialized)
        lock.lock()
        if let readID, bytes + (encoded?.count ?? bytesMax) > bytesMax {
            let failure = RPCFailure.overloaded(Self.readLeftOut(bytesMax))
            encoded = Self.serialized(RPCResponse.failure(id: readID, error: failure))
        }
        bytes += encoded?.count ?? 0
        responses[index] = encoded
        remaining -= 1
        let finished = remaining == 0
        lock.unlock()
        guard finished else { return }
        let present = responses.compactMap { $0 }
        guard !present.isEmpty else { return reply(nil) }
        var line: [UInt8] = []
        line.reserveCapacity(bytes + present.count + 2)
        line.append(UInt8(ascii: "["))
        for (i, response) in present.enumerated() {
            if i > 0 { line.append(UInt8(ascii: ",")) }
            line.append(contentsOf: response)
        }
        line.append(contentsOf: [UInt8(ascii: "]"), UInt8(ascii: "\n")])
        reply(line)
    }

    private static func serialized(_ value: JSONValue) -> [UInt8] {
        var bytes: [UInt8] = []
        value.serialize(into: &bytes)
        return bytes
    }
}

typealias ResultCollector = Collector<Result<JSONValue, RPCFailure>>
