import Foundation
import Synchronization
import TallyClient
import TallyProtocol
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The protocol's promises through the real daemon: ordering, read-your-writes, idempotency,
/// upserts, paging, the hash chain, verification, status and discovery.
///
/// Serialized: several tests compare `lastSequence` before and after, or walk the whole ledger.
@Suite("protocol through the real daemon", .serialized, .sharedDaemon)
struct ProtocolTests {
    let daemon: LiveDaemon

    init() throws { daemon = try SharedDaemon.get() }

    static let zeroHash = String(repeating: "0", count: 64)

    /// The last events of the ledger (at most `count`).
    func lastEvents(_ count: Int) throws -> [JSONValue] {
        let last = try daemon.lastSequence()
        let page = try daemon.call("readLedger", ["after": .integer(max(0, last - count)), "limit": .integer(count)])
        return page["events"]?.arrayValue ?? []
    }

    // MARK: - Ordering

    @Test("reads on one connection never go back in time: a point read pipelined (or batched) after a long read answers as of a later state, while another connection writes")
    func readsInOrder() throws {
        // A daemon of its own: the writer below adds thousands of customers.
        let daemon = try LiveDaemon().start()
        defer { _ = try? daemon.terminate() }
        let writing = Atomic<Bool>(true)
        let socketPath = daemon.socketPath
        let writer = Thread {
            guard let connection = try? TallyConnection(socketPath: socketPath, timeoutSeconds: 30) else { return }
            defer { connection.close() }
            var i = 0
            while writing.load(ordering: .relaxed) {
                _ = try? connection.call("provisionCustomer", ["customerId": .string(uniqueID("order-\(i)"))])
                i += 1
            }
        }
        writer.start()
        defer {
            writing.store(false, ordering: .relaxed)
            while !writer.isFinished { usleep(1000) }
        }
        let connection = try daemon.connect()
        defer { connection.close() }
        var wrongPipelined = 0, wrongBatched = 0
        let rounds = 400
        for _ in 0..<rounds {
            let after = max(0, try daemon.lastSequence() - 20)
            let pair: [(method: String, params: JSONObject)] = [("readLedger", ["after": .integer(after), "limit": 1000]), ("getStatus", [:])]
            let results = try connection.callPipelined(pair)
            let read = try results[0].get()["events"]?.arrayValue?.last?["sequence"]?.numberText.flatMap { Int($0) } ?? 0
            let status = try results[1].get()["lastSequence"]?.numberText.flatMap { Int($0) } ?? 0
            if status < read { wrongPipelined += 1 }
            let batch: JSONValue = [
                ["jsonrpc": "2.0", "id": 1, "method": "readLedger", "params": ["after": .integer(after), "limit": 1000]],
                ["jsonrpc": "2.0", "id": 2, "method": "getStatus"],
            ]
            try connection.sendLine(batch.serialized())
            let replies = try connection.readReply().arrayValue ?? []
            let batchRead = replies.first { $0["id"] == 1 }?.field("result.events")?.arrayValue?.last?["sequence"]?.numberText.flatMap { Int($0) } ?? 0
            let batchStatus = replies.first { $0["id"] == 2 }?.field("result.lastSequence")?.numberText.flatMap { Int($0) } ?? 0
            if batchStatus < batchRead { wrongBatched += 1 }
        }
        #expect(wrongPipelined == 0 && wrongBatched == 0, "getStatus after readLedger saw an older ledger: \(wrongPipelined) pipelined, \(wrongBatched) batched of \(rounds)")
    }

    @Test("clients looping on full replays do not take every reading thread: a readLedger sent while twice as many verifyLedger calls as cores run is answered before any of them")
    func replaysLeaveThreadsForOtherReads() throws {
        // A daemon of its own, with a log long enough that a replay takes a while.
        let daemon = try LiveDaemon().start()
        defer { _ = try? daemon.terminate() }
        let filler = try daemon.connect()
        defer { filler.close() }
        for round in 0..<40 {
            let batch = JSONValue.array((0..<1000).map { i in
                ["jsonrpc": "2.0", "id": .integer(i), "method": "provisionCustomer", "params": ["customerId": .string("heavy-\(round)-\(i)")]]
            })
            try filler.sendLine(batch.serialized())
            _ = try filler.readReply()
        }
        let replayers = 2 * ProcessInfo.processInfo.activeProcessorCount
        let answered = Atomic<Int>(0)
        let start = ContinuousClock.now
        let socketPath = daemon.socketPath
        let threads = (0..<replayers).map { _ in
            Thread {
                if let connection = try? TallyConnection(socketPath: socketPath, timeoutSeconds: 120) {
                    _ = try? connection.call("verifyLedger")
                    connection.close()
                }
                answered.add(1, ordering: .relaxed)
            }
        }
        threads.forEach { $0.start() }
        defer { while threads.contains(where: { !$0.isFinished }) { usleep(1000) } }
        usleep(100_000)  // the replays have started (else the read below proves nothing)
        let probe = try daemon.connect()
        defer { probe.close() }
        _ = try probe.call("readLedger", ["after": 0, "limit": 10])
        let before = answered.load(ordering: .relaxed)
        while answered.load(ordering: .relaxed) < replayers { usleep(1000) }
        #expect(before == 0, "\(before) of \(replayers) replays answered before the readLedger; all took \(ContinuousClock.now - start)")
    }

    @Test("lines over 64 KiB (decoded off the event loop) holding slow reads, pipelined with short ones: every line is answered, in order")
    func longLinesWithSlowReads() throws {
        let connection = try daemon.connect()
        defer { connection.close() }
        for round in 0..<20 {
            // A batch over 64 KiB: a slow read first or last, and 1,500 point reads.
            var batch: [JSONValue] = (0..<1500).map { ["jsonrpc": "2.0", "id": .integer($0 + 1), "method": "getStatus"] }
            let slow: JSONValue = ["jsonrpc": "2.0", "id": 0, "method": "listCustomers", "params": ["limit": 5]]
            if round % 2 == 0 { batch.insert(slow, at: 0) } else { batch.append(slow) }
            try connection.sendLine(JSONValue.array(batch).serialized())
            try connection.sendLine(Array(#"{"jsonrpc":"2.0","id":"after","method":"getStatus"}"#.utf8))
            let replies = try #require(try connection.readReply().arrayValue)
            #expect(replies.count == 1501 && replies.allSatisfy { $0["result"] != nil }, "round \(round)")
            #expect(try connection.readReply()["id"] == "after", "round \(round): the line after the long one is answered")
        }
    }

    @Test("1000 pipelined requests on one connection get 1000 replies in request order")
    func pipelining() throws {
        let prefix = uniqueID("pipe")
        let count = 1000
        var payload: [UInt8] = []
        for index in 0..<count {
            let line: String
            switch index % 3 {
            case 0: line = #"{"jsonrpc":"2.0","id":\#(index),"method":"provisionCustomer","params":{"customerId":"\#(prefix)-\#(index)"}}"#
            case 1: line = #"{"jsonrpc":"2.0","id":\#(index),"method":"getCustomer","params":{"customerId":"\#(prefix)-\#(index - 1)"}}"#
            default: line = #"{"jsonrpc":"2.0","id":\#(index),"method":"getStatus"}"#
            }
            payload += Array(line.utf8) + [UInt8(ascii: "\n")]
        }
        let before = try daemon.lastSequence()
        let connection = try daemon.connect()
        defer { connection.close() }
        try connection.sendLine(payload)  // one write, all 1000 lines
        for index in 0..<count {
            let reply = try connection.readReply()
            let result = expectResult(reply, id: .integer(index))
            switch index % 3 {
            case 0, 1:
                // The getCustomer right after a provision sees it: read-your-writes per connection.
                #expect(result["id"] == .string("\(prefix)-\(index - index % 3)"), "reply \(index): \(reply.jsonText)")
            default:
                #expect(result["lastSequence"] != nil, "reply \(index): \(reply.jsonText)")
            }
            if reply["id"] != .integer(index) { break }  // out of order: one failure is enough
        }
        #expect(try daemon.lastSequence() == before + (count + 2) / 3)
    }

    @Test("a long line (decoded off the event loop) still takes effect before the connection's later lines: a SET pipelined after a 600-item bulk of DELTAs sets the total")
    func longLineKeepsOrder() throws {
        let customer = try daemon.newCustomer("long-line"), feature = try daemon.newMeteredFeature("long-line")
        let item: JSONValue = ["customerId": .string(customer), "featureId": .string(feature), "value": 1, "dimensions": ["padding": .string(String(repeating: "x", count: 100))]]
        let bulk: JSONValue = ["jsonrpc": "2.0", "id": 1, "method": "reportUsageBulk", "params": ["usages": .array(Array(repeating: item, count: 600))]]
        let line = bulk.serialized()
        #expect(line.count > 64 * 1024, "the line is long enough to be handled off the event loop")
        let set: JSONValue = ["jsonrpc": "2.0", "id": 2, "method": "reportUsage", "params": ["customerId": .string(customer), "featureId": .string(feature), "value": 1000, "updateBehavior": "SET"]]
        let check: JSONValue = ["jsonrpc": "2.0", "id": 3, "method": "getEntitlement", "params": ["customerId": .string(customer), "featureId": .string(feature)]]
        let connection = try daemon.connect()
        defer { connection.close() }
        try connection.sendLine(line)
        try connection.sendLine(set.serialized())
        try connection.sendLine(check.serialized())
        let replies = try (0..<3).map { _ in try connection.readReply() }
        #expect(replies.map { $0["id"] } == [1, 2, 3])
        #expect(replies[0].field("result.results")?.arrayValue?.count == 600, "\(replies[0].jsonText.prefix(300))")
        #expect(replies[1].field("result.measurement.delta") == "400", "the SET came after the 600 DELTAs: \(replies[1].jsonText)")
        #expect(replies[2].field("result.currentUsage") == "1000", "\(replies[2].jsonText)")
    }

    @Test("a provision and a getCustomer in one write: the get sees the provision")
    func readYourWrites() throws {
        let connection = try daemon.connect()
        defer { connection.close() }
        for round in 0..<20 {
            let customer = uniqueID("ryw")
            let lines = #"{"jsonrpc":"2.0","id":"p","method":"provisionCustomer","params":{"customerId":"\#(customer)","name":"Round \#(round)"}}"#
                + "\n" + #"{"jsonrpc":"2.0","id":"g","method":"getCustomer","params":{"customerId":"\#(customer)"}}"#
            try connection.sendLine(Array(lines.utf8))
            let created = expectResult(try connection.readReply(), id: "p")
            let read = expectResult(try connection.readReply(), id: "g")
            #expect(read == created)
            #expect(read["name"] == .string("Round \(round)"))
        }
    }

    @Test("pipelined on one connection, a query sees the commands before it and none after it (inline and off-loop queries)")
    func queriesBetweenCommands() throws {
        let connection = try daemon.connect()
        defer { connection.close() }
        for round in 0..<20 {
            let customer = uniqueID("order")
            func provision(_ id: String, _ name: String) -> String {
                #"{"jsonrpc":"2.0","id":"\#(id)","method":"provisionCustomer","params":{"customerId":"\#(customer)","name":"\#(name)"}}"#
            }
            let get = { (id: String) in #"{"jsonrpc":"2.0","id":"\#(id)","method":"getCustomer","params":{"customerId":"\#(customer)"}}"# }
            let before = try daemon.lastSequence()
            let lines = [
                provision("a", "A"), get("g1"), provision("b", "B"),
                #"{"jsonrpc":"2.0","id":"v","method":"verifyLedger"}"#, provision("c", "C"), get("g2"),
            ]
            try connection.sendLine(Array(lines.joined(separator: "\n").utf8))
            _ = expectResult(try connection.readReply(), id: "a")
            #expect(expectResult(try connection.readReply(), id: "g1")["name"] == "A", "round \(round): the get saw a later command")
            _ = expectResult(try connection.readReply(), id: "b")
            let verified = expectResult(try connection.readReply(), id: "v")
            #expect(verified["lastSequence"] == .integer(Int64(before + 2)), "round \(round): verifyLedger read \(verified["lastSequence"]?.jsonText ?? "?"), not the ledger after the second command")
            _ = expectResult(try connection.readReply(), id: "c")
            #expect(expectResult(try connection.readReply(), id: "g2")["name"] == "C", "round \(round)")

            // The same in one batch array: its elements take effect in their order too.
            let batch = "[" + [provision("d", "D"), get("g3"), provision("e", "E"), get("g4")].joined(separator: ",") + "]"
            try connection.sendLine(Array(batch.utf8))
            let replies = try connection.readReply().arrayValue ?? []
            let names = replies.filter { $0["id"] == "g3" || $0["id"] == "g4" }.map { $0["result"]?["name"]?.stringValue ?? "?" }
            #expect(names == ["D", "E"], "round \(round): the batch's queries read \(names)")
        }
    }

    // MARK: - Idempotency and upserts

    @Test("idempotency: same key and params replays the result; different params is IDEMPOTENCY_CONFLICT")
    func idempotency() throws {
        let customer = uniqueID("idem")
        let key = uniqueID("key")
        let params: JSONObject = ["customerId": .string(customer), "name": "Idem", "email": "i@x.io", "idempotencyKey": .string(key)]
        let first = try daemon.call("provisionCustomer", params)
        #expect(first["duplicate"] == nil)
        let sequence = try daemon.lastSequence()

        let second = try daemon.call("provisionCustomer", params)
        #expect(second["duplicate"] == true)
        var withoutFlag = second.objectValue ?? [:]
        withoutFlag["duplicate"] = nil
        #expect(JSONValue.object(withoutFlag) == first, "the original result: \(second.jsonText) vs \(first.jsonText)")
        #expect(try daemon.lastSequence() == sequence)

        // The same params in another key order are the same payload.
        let reordered = try daemon.exchange(#"{"jsonrpc":"2.0","id":1,"method":"provisionCustomer","params":{"idempotencyKey":"\#(key)","email":"i@x.io","name":"Idem","customerId":"\#(customer)"}}"#)
        #expect(expectResult(reordered, id: 1)["duplicate"] == true)
        #expect(try daemon.lastSequence() == sequence)

        var changed = params
        changed["name"] = "Other"
        let conflict = expectRPCError(code: 1011, reason: "IDEMPOTENCY_CONFLICT") {
            _ = try daemon.call("provisionCustomer", changed)
        }
        #expect(conflict != nil)
        #expect(try daemon.lastSequence() == sequence)
        #expect(try daemon.call("getCustomer", ["customerId": .string(customer)])["name"] == "Idem")
        try daemon.expectServesOtherConnections()
    }

    @Test("method and param names match by bytes: \"K\" written as KELVIN SIGN (U+212A, canonically equal) is no method, and no idempotencyKey — a retry so spelled is refused, not applied twice")
    func namesByBytes() throws {
        // Swift's String == calls these equal; JSON, and so the contract, does not.
        #expect("idempotency\u{212A}ey" == "idempotencyKey")
        let customer = try daemon.call("provisionCustomer", ["customerId": .string(uniqueID("kelvin"))])["id"]?.stringValue ?? ""
        let method = try daemon.exchange(#"{"jsonrpc":"2.0","id":7,"method":"listDimension\#u{212A}eys","params":{"customerId":"\#(customer)"}}"#)
        expectError(method, code: -32601, id: 7)

        let before = try daemon.lastSequence()
        let key = uniqueID("k")
        let line = #"{"jsonrpc":"2.0","id":8,"method":"provisionCustomer","params":{"customerId":"\#(uniqueID("kelvin"))","idempotency\#u{212A}ey":"\#(key)"}}"#
        for _ in 0..<2 { expectError(try daemon.exchange(line), code: -32602, id: 8, field: "idempotency\u{212A}ey") }
        #expect(try daemon.lastSequence() == before, "a refused param applies nothing")
    }

    @Test("a provisionCustomer retry answers the customer as it was then, its subscriptions too, after a subscription and a rename")
    func provisionRetryIsTheOriginal() throws {
        let customer = uniqueID("orig")
        let params: JSONObject = ["customerId": .string(customer), "name": "Original", "idempotencyKey": .string(uniqueID("key"))]
        let first = try daemon.call("provisionCustomer", params)
        #expect(first["subscriptions"] == [], "\(first.jsonText)")
        let feature = uniqueID("feat"), plan = uniqueID("plan")
        _ = try daemon.call("defineFeature", ["featureId": .string(feature), "type": "BOOLEAN"])
        _ = try daemon.call("definePlan", ["planId": .string(plan), "displayName": "Pro", "entitlements": [["featureId": .string(feature)]]])
        _ = try daemon.call("provisionSubscription", ["customerId": .string(customer), "planId": .string(plan)])
        _ = try daemon.call("provisionCustomer", ["customerId": .string(customer), "name": "Renamed"])
        let retry = try daemon.call("provisionCustomer", params)
        var withoutFlag = retry.objectValue ?? [:]
        withoutFlag["duplicate"] = nil
        #expect(retry["duplicate"] == true && JSONValue.object(withoutFlag) == first, "\(retry.jsonText) vs \(first.jsonText)")
        // A new provision (no key) answers what is there now.
        let now = try daemon.call("provisionCustomer", ["customerId": .string(customer)])
        #expect(now["name"] == "Renamed" && now["subscriptions"]?.arrayValue?.count == 1, "\(now.jsonText)")
    }

    @Test("upsert: a new name updates name and updatedAt, keeps createdAt, appends CUSTOMER_UPDATED")
    func upsert() throws {
        let customer = uniqueID("upsert")
        let created = try daemon.call("provisionCustomer", ["customerId": .string(customer), "name": "First", "email": "a@x.io", "metadata": ["tier": "gold"]])
        #expect(created["createdAt"] == created["updatedAt"])
        let afterCreate = try daemon.lastSequence()
        #expect(try lastEvents(1).first?["type"] == "CUSTOMER_PROVISIONED")
        usleep(5_000)

        let renamed = try daemon.call("provisionCustomer", ["customerId": .string(customer), "name": "Second"])
        #expect(renamed["name"] == "Second")
        #expect(renamed["email"] == "a@x.io", "fields not given are kept")
        #expect(renamed["metadata"] == ["tier": "gold"])
        #expect(renamed["createdAt"] == created["createdAt"])
        #expect(renamed["updatedAt"] != created["updatedAt"])
        #expect(try daemon.lastSequence() == afterCreate + 1)
        let event = try #require(try lastEvents(1).first)
        #expect(event["type"] == "CUSTOMER_UPDATED")
        #expect(event.field("data.customerId") == .string(customer))
        #expect(event.field("data.name") == "Second")
        #expect(try daemon.call("getCustomer", ["customerId": .string(customer)]) == renamed)

        // The same fields again: nothing to change, nothing appended.
        let same = try daemon.call("provisionCustomer", ["customerId": .string(customer), "name": "Second", "email": "a@x.io"])
        #expect(same == renamed)
        let bare = try daemon.call("provisionCustomer", ["customerId": .string(customer)])
        #expect(bare == renamed)
        #expect(try daemon.lastSequence() == afterCreate + 1)

        // name: null clears the name.
        usleep(5_000)
        let cleared = try daemon.call("provisionCustomer", ["customerId": .string(customer), "name": .null])
        #expect(cleared["name"] == nil, "\(cleared.jsonText)")
        #expect(cleared["email"] == "a@x.io")
        #expect(cleared["createdAt"] == created["createdAt"])
        #expect(try daemon.lastSequence() == afterCreate + 2)
        let clearEvent = try #require(try lastEvents(1).first)
        #expect(clearEvent["type"] == "CUSTOMER_UPDATED")
        #expect(clearEvent.field("data.name") == .null, "\(clearEvent.jsonText)")
        #expect(try daemon.call("getCustomer", ["customerId": .string(customer)])["name"] == nil)
        // Clearing what is already clear appends nothing.
        _ = try daemon.call("provisionCustomer", ["customerId": .string(customer), "name": .null])
        #expect(try daemon.lastSequence() == afterCreate + 2)
    }

    // MARK: - Paging

    @Test("listCustomers pages with limit/after/next cover all customers exactly once, in id order")
    func listPaging() throws {
        let prefix = uniqueID("page")
        let ids = (0..<25).map { String(format: "\(prefix)-%02d", $0) }
        // Provisioned out of order: the listing orders them, not the arrival.
        _ = try daemon.connect().callPipelined(ids.reversed().map { (method: "provisionCustomer", params: ["customerId": .string($0)]) })

        // The shared daemon serves other suites meanwhile: customers they add while this pages may
        // or may not be seen, but every one there before must be.
        let before = try daemon.call("listCustomers", ["limit": 1000])["customers"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? []
        var seen: [String] = []
        var after: JSONValue? = nil
        var pages = 0
        while true {
            var params: JSONObject = ["limit": 7]
            if let after { params["after"] = after }
            let page = try daemon.call("listCustomers", params)
            let customers = try #require(page["customers"]?.arrayValue)
            #expect(customers.count <= 7)
            let pageIDs = customers.compactMap { $0["id"]?.stringValue }
            seen += pageIDs
            pages += 1
            let next = try #require(page["next"])
            if next.isNull { break }
            #expect(customers.count == 7, "a page that is not full has no next")
            #expect(next == .string(pageIDs.last ?? ""), "next is the last id of the page")
            after = next
            try #require(pages < 10_000)
        }
        #expect(seen.count == Set(seen).count, "no customer listed twice")
        #expect(zip(seen, seen.dropFirst()).allSatisfy { $0.utf8.lexicographicallyPrecedes($1.utf8) }, "in id order")
        #expect(seen.filter { $0.hasPrefix(prefix + "-") } == ids, "all 25, once each, in order")
        #expect(Set(before).isSubset(of: Set(seen)), "customers missing from the pages: \(Set(before).subtracting(seen).sorted().prefix(5))")
    }

    @Test("readLedger pages through the log; the hash chain links every event")
    func ledgerPagingAndChain() throws {
        // Enough events for several pages.
        let prefix = uniqueID("chain")
        _ = try daemon.connect().callPipelined((0..<12).map { (method: "provisionCustomer", params: ["customerId": .string("\(prefix)-\($0)")]) })
        let status = try daemon.call("getStatus")
        let last = try #require(status["lastSequence"]?.numberText.flatMap { Int($0) })

        var events: [JSONValue] = []
        var after = 0
        while true {
            let page = try daemon.call("readLedger", ["after": .integer(after), "limit": 5])
            let batch = try #require(page["events"]?.arrayValue)
            events += batch
            guard let next = page["next"], !next.isNull else { break }
            #expect(batch.count == 5)
            #expect(next == batch.last?["sequence"])
            after = try #require(next.numberText.flatMap { Int($0) })
        }
        #expect(events.count == last)
        for (index, event) in events.enumerated() {
            #expect(event["sequence"] == .integer(index + 1))
            let hash = try #require(event["hash"]?.stringValue)
            #expect(hash.count == 64 && hash.allSatisfy(\.isHexDigit))
            #expect(event["type"]?.stringValue != nil)
            #expect(event["recordedAt"]?.stringValue != nil)
            #expect(event["data"]?.objectValue != nil)
            let expectedPrev = index == 0 ? .string(Self.zeroHash) : events[index - 1]["hash"]
            #expect(event["prevHash"] == expectedPrev, "event \(index + 1) does not link to its predecessor")
        }
        #expect(events.last?["hash"] == status["headHash"])
        // Past the end: an empty page, next null.
        let beyond = try daemon.call("readLedger", ["after": .integer(last + 100)])
        #expect(beyond["events"] == [])
        #expect(beyond["next"] == .null)
    }

    @Test("verifyLedger: hash chain valid and projections match")
    func verify() throws {
        _ = try daemon.call("provisionCustomer", ["customerId": .string(uniqueID("verify")), "name": "V"])
        let last = try daemon.lastSequence()
        let report = try daemon.call("verifyLedger")
        #expect(report["hashChainValid"] == true, "\(report.jsonText)")
        #expect(report["projectionsMatch"] == true, "\(report.jsonText)")
        #expect(report["mismatches"] == [], "\(report.jsonText)")
        #expect(report["lastSequence"] == .integer(last))
        #expect(report["events"] == .integer(last))
    }

    @Test("getStatus reports version, lastSequence, dataDir, uptime, socket, pid and connections")
    func status() throws {
        let connection = try daemon.connect()
        defer { connection.close() }
        let status = try connection.call("getStatus")
        #expect(status["version"]?.stringValue?.isEmpty == false)
        #expect(status["version"] == .string(TallyVersion.current))
        let sequence = try #require(status["lastSequence"]?.numberText.flatMap { Int($0) })
        #expect(sequence >= 0)
        #expect(status["dataDir"] == .string(daemon.dataDirectory))
        #expect(status["socketPath"] == .string(daemon.socketPath))
        #expect(status["pid"] == .integer(daemon.pid))
        let uptime = try #require(status["uptimeSeconds"]?.numberText.flatMap { Int($0) })
        #expect(uptime >= 0)
        let connections = try #require(status["connections"]?.numberText.flatMap { Int($0) })
        #expect(connections >= 1)
        let head = try #require(status["headHash"]?.stringValue)
        #expect(head.count == 64)
        #expect(status["startedAt"]?.stringValue?.hasSuffix("Z") == true)
        // Params are checked even where there are none to give.
        expectRPCError(code: -32602) { _ = try daemon.call("getStatus", ["x": 1]) }
    }

    // MARK: - Discovery

    /// The members of `value` its schema (in the OpenRPC document `root`) does not describe: an
    /// object's keys outside `properties` (unless `additionalProperties` describes them), at any depth.
    static func undocumented(_ value: JSONValue, _ schema: JSONValue, root: JSONValue, path: String) -> [String] {
        var schema = schema
        if let ref = schema["$ref"]?.stringValue, ref.hasPrefix("#/components/schemas/") {
            schema = root.field("components.schemas." + ref.dropFirst("#/components/schemas/".count)) ?? .null
        }
        for key in ["oneOf", "anyOf"] {
            if let options = schema[key]?.arrayValue {
                let found = options.map { undocumented(value, $0, root: root, path: path) }
                return found.first { $0.isEmpty } ?? found.min { $0.count < $1.count } ?? []
            }
        }
        switch value {
        case .object(let object):
            let properties = schema["properties"]?.objectValue
            var found: [String] = []
            for (key, member) in object {
                if let described = properties?[key] {
                    found += undocumented(member, described, root: root, path: path + "." + key)
                } else if let extra = schema["additionalProperties"], extra.objectValue != nil {
                    found += undocumented(member, extra, root: root, path: path + "." + key)
                } else if properties != nil {
                    found.append(path + "." + key)
                }
            }
            return found
        case .array(let items):
            guard let itemSchema = schema["items"] else { return [] }
            return items.enumerated().flatMap { undocumented($1, itemSchema, root: root, path: path + "[\($0)]") }
        default:
            return []
        }
    }

    @Test("every member of the results of the main methods is described by the method's result schema in rpc.discover (a generated client sees them all)")
    func resultSchemasDescribeEveryMember() throws {
        let document = try daemon.call("rpc.discover")
        var schemas: [String: JSONValue] = [:]
        for method in document["methods"]?.arrayValue ?? [] {
            if let name = method["name"]?.stringValue, let schema = method.field("result.schema") { schemas[name] = schema }
        }
        let customer = uniqueID("doc"), currency = uniqueID("doc-cur"), feature = uniqueID("doc-f"), plan = uniqueID("doc-p"), event = uniqueID("doc-e")
        var results: [(String, JSONValue)] = []
        func call(_ method: String, _ params: JSONObject) throws -> JSONValue {
            let result = try daemon.call(method, params)
            results.append((method, result))
            return result
        }
        _ = try call("provisionCustomer", ["customerId": .string(customer), "name": "Doc", "email": "doc@example.com", "metadata": ["k": "v"]])
        _ = try call("defineCurrency", ["currencyId": .string(currency), "displayName": "Credits", "symbol": "c"])
        _ = try call("defineFeature", ["featureId": .string(feature), "type": "METERED", "unit": "calls",
                                       "meter": ["eventName": .string(event), "aggregation": "SUM", "field": "n", "filters": [["key": "n", "op": "EXISTS"]]],
                                       "creditCost": ["currencyId": .string(currency), "amountPerUnit": "1"]])
        _ = try call("definePlan", ["planId": .string(plan), "displayName": "Plan", "entitlements": [["featureId": .string(feature), "usageLimit": "1000", "resetPeriod": "MONTH"]]])
        let subscription = try call("provisionSubscription", ["customerId": .string(customer), "planId": .string(plan)])
        _ = try call("getCustomer", ["customerId": .string(customer)])
        _ = try call("listCustomers", ["limit": 5])
        let grant = try call("grantCredits", ["customerId": .string(customer), "currencyId": .string(currency), "amount": "100", "grantType": "PAID",
                                              "displayName": "G", "cost": ["amount": "10", "currency": "USD"], "metadata": ["k": "v"], "comment": "c",
                                              "expireAt": "2999-01-01T00:00:00Z"])
        _ = try call("grantCredits", ["customerId": .string(customer), "currencyId": .string(currency), "amount": "5", "grantType": "PROMOTIONAL", "effectiveAt": "2998-01-01T00:00:00Z"])
        _ = try call("setAutoRecharge", ["customerId": .string(customer), "currencyId": .string(currency), "isEnabled": true, "thresholdValue": "90",
                                         "targetBalance": "100", "maxSpendLimit": "1000", "grantExpirationPeriod": "MONTH"])
        _ = try call("getAutoRecharge", ["customerId": .string(customer), "currencyId": .string(currency)])
        _ = try call("reportUsage", ["customerId": .string(customer), "featureId": .string(feature), "value": "20", "dimensions": ["model": "m"], "idempotencyKey": "u1"])
        _ = try call("reportUsage", ["customerId": .string(customer), "featureId": .string(feature), "value": "20", "dimensions": ["model": "m"], "idempotencyKey": "u1"])
        _ = try call("reportUsageBulk", ["usages": [["customerId": .string(customer), "featureId": .string(feature), "value": "1"]]])
        _ = try call("reportEvent", ["events": [["customerId": .string(customer), "eventName": .string(event), "idempotencyKey": "e1", "dimensions": ["n": "2"]],
                                                ["customerId": .string(customer), "eventName": .string(event), "idempotencyKey": "e2", "dimensions": ["n": "x"]]]])
        _ = try call("importRecords", ["format": "STIGG", "records": [["id": .string(uniqueID("s")), "customerId": .string(customer), "featureId": .string(feature),
                                                                       "value": 1, "timestamp": "2026-11-30T00:00:00Z"]]])
        _ = try call("getUsageHistory", ["customerId": .string(customer), "featureId": .string(feature), "startDate": "2020-01-01T00:00:00Z", "granularity": "DAY", "groupBy": ["model"]])
        _ = try call("listDimensionKeys", ["customerId": .string(customer)])
        _ = try call("getEntitlement", ["customerId": .string(customer), "featureId": .string(feature), "requestedUsage": "1"])
        _ = try call("getEntitlements", ["customerId": .string(customer)])
        _ = try call("grantPromotionalEntitlement", ["customerId": .string(customer), "featureId": .string(feature), "usageLimit": "5000"])
        _ = try call("getCreditBalance", ["customerId": .string(customer)])
        _ = try call("getCreditBalance", ["customerId": .string(customer), "asOf": ["sequence": .integer(try daemon.lastSequence())]])
        _ = try call("getCreditGrants", ["customerId": .string(customer)])
        _ = try call("getCreditLedger", ["customerId": .string(customer)])
        _ = try call("getCreditUsage", ["customerId": .string(customer), "timeRange": "LAST_YEAR", "groupBy": ["model"]])
        if let id = grant["grantId"] { _ = try call("voidCreditGrant", ["grantId": id]) }
        if let id = subscription["id"] { _ = try call("cancelSubscription", ["subscriptionId": id]) }
        _ = try call("getStatus", [:])
        _ = try call("readLedger", ["after": 0, "limit": 3])
        for (method, result) in results {
            guard let schema = schemas[method] else {
                Issue.record("\(method) has no result schema")
                continue
            }
            let missing = Self.undocumented(result, schema, root: document, path: "result")
            #expect(missing.isEmpty, "\(method): not in its result schema: \(missing) in \(result.jsonText)")
        }
    }

    @Test("rpc.discover lists exactly the methods the daemon serves, as in openrpc.json on disk")
    func discover() throws {
        let document = try daemon.call("rpc.discover")
        let methods = try #require(document["methods"]?.arrayValue)
        let names = methods.compactMap { $0["name"]?.stringValue }
        #expect(names.count == methods.count, "every method has a name")
        #expect(Set(names).count == names.count, "no method listed twice")
        #expect(document["openrpc"]?.stringValue != nil)

        // The file in the repository is what the daemon serves.
        let path = repositoryRoot() + "/Sources/TallyProtocol/openrpc.json"
        let file = try JSONParser.parse(Array(try Data(contentsOf: URL(fileURLWithPath: path))), depthMax: 512)
        #expect(document == file, "rpc.discover differs from \(path)")
        let fileNames = (file["methods"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
        #expect(names.sorted() == fileNames.sorted())

        // Every documented method is served (never -32601), and nothing it does not document is.
        let before = try daemon.lastSequence()
        let connection = try daemon.connect()
        defer { connection.close() }
        for name in names {
            do {
                _ = try connection.call(name, [:])
            } catch let error as RPCError {
                #expect(error.code != -32601, "\(name) is documented but not served: \(error)")
            }
        }
        for name in ["getCustomers", "GetStatus", "provisioncustomer", "rpc.discover2", "rpc.", "", "deleteCustomer", "reportUsage2"]
        where !names.contains(name) {
            expectRPCError(code: -32601) { _ = try connection.call(name, [:]) }
        }
        #expect(try daemon.lastSequence() == before, "probing with empty params appended events")
    }
}

/// Connection limits, each with its own daemon and config file.
@Suite("connection limits through the real daemon")
struct ConnectionLimitTests {
    /// A daemon of its own with one limit set through its config file.
    static func startDaemon(limit name: String, _ value: Int) throws -> LiveDaemon {
        let config = TemporaryDirectory()
        let path = try writeFile("limits:\n  \(name): \(value)\n", named: "tallyd.yaml", in: config)
        return try LiveDaemon(extraArguments: ["--config", path]).start()
    }

    /// Waits until getStatus on `connection` reports `count` open connections.
    func waitForConnections(_ count: Int, on connection: TallyConnection) throws {
        let deadline = Date().addingTimeInterval(5)
        var last: JSONValue = .null
        while Date() < deadline {
            last = try connection.call("getStatus")["connections"] ?? .null
            if last == .integer(count) { return }
            usleep(10_000)
        }
        throw LiveTestError("expected \(count) connections, getStatus still says \(last.jsonText)")
    }

    @Test("connectionsMax 2: the third connection gets 2002 OVERLOADED and is closed; after one closes a new one works")
    func connectionCap() throws {
        let daemon = try Self.startDaemon(limit: "connectionsMax", 2)

        let first = try daemon.connect()
        try waitForConnections(1, on: first)  // the start-up probe has gone
        let second = try daemon.connect()
        #expect(try second.call("getStatus")["connections"] == 2)

        let third = try daemon.connect()
        let refusal = try third.readReply()
        expectError(refusal, code: 2002, id: .null)
        #expect(refusal.field("error.data.reason") == "OVERLOADED")
        #expect(try third.readLine() == nil, "the refused connection is closed")
        third.close()

        // The two admitted ones are unaffected.
        _ = try first.call("getStatus")
        first.close()
        try waitForConnections(1, on: second)
        let fourth = try daemon.connect()
        #expect(try fourth.call("getStatus")["connections"] == 2)
        #expect(try fourth.call("provisionCustomer", ["customerId": "after-cap"])["id"] == "after-cap")
        #expect(try daemon.terminate() == 0)
    }

    @Test("a client that sends and never reads: the server stops reading it once its unsent replies pass pendingReplyBytesMax, and serves others meanwhile")
    func unreadRepliesStopReading() throws {
        let daemon = try Self.startDaemon(limit: "pendingReplyBytesMax", 65536)
        let greedy = try RawSocket(path: daemon.socketPath)
        // Each reply is the whole OpenRPC document (~38 KB); the request is 50 bytes. Unbounded,
        // all 40,000 go in (and ~1.5 GB of replies pile up in the daemon).
        let line = Array(#"{"jsonrpc":"2.0","id":1,"method":"rpc.discover"}"#.utf8) + [UInt8(ascii: "\n")]
        let accepted = greedy.writeUntilBlocked(line, count: 40_000)
        #expect(accepted < 20_000, "the daemon kept reading a connection whose replies pile up: \(accepted) lines taken")
        try daemon.expectServesOtherConnections()
        // The held connection still gets its replies, in order, once it reads.
        for _ in 0..<3 {
            let reply = try JSONParser.parse(try #require(try greedy.readLine()))
            #expect(reply.field("result.openrpc") != nil)
        }
        greedy.close()
        #expect(try daemon.terminate() == 0)
    }

    @Test("a client that pipelines 2,000 commands, half-closes and only then reads gets every reply before the close (none dropped from the daemon's buffers)")
    func halfCloseGetsEveryReply() throws {
        let daemon = try LiveDaemon().start()
        let socket = try RawSocket(path: daemon.socketPath)
        let count = 2000
        try socket.write(provisionRequestLines(count, prefix: "hc"))
        socket.shutdownWrite()
        // Not reading for a while: the replies wait in the daemon's buffers, and must still go out.
        usleep(500_000)
        let replies = try socket.readAllLines().map { try JSONParser.parse($0) }
        #expect(replies.count == count, "\(replies.count) of \(count) replies before the close")
        #expect(replies.enumerated().allSatisfy { $0.element["id"] == .integer($0.offset) }, "in request order")
        #expect(replies.allSatisfy { $0["result"] != nil })
        #expect(try daemon.terminate() == 0)
    }

    @Test("a client that pipelines 1,000 expensive reads and never reads the replies makes the daemon compute and hold about pendingReplyBytesMax of them, not all 1,000")
    func unreadExpensiveReadsAreBounded() throws {
        let daemon = try Self.startDaemon(limit: "pendingReplyBytesMax", 65536)
        let pid = try #require(daemon.process?.pid)
        func residentKilobytes() throws -> Int {
            let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
            let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") })
            return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? 0
        }
        let before = try residentKilobytes()
        let greedy = try RawSocket(path: daemon.socketPath)
        // Each reply is the OpenRPC document (~76 KB): all 1,000 would be ~76 MB.
        let line = Array(#"{"jsonrpc":"2.0","id":1,"method":"rpc.discover"}"#.utf8) + [UInt8(ascii: "\n")]
        try greedy.write(Array([[UInt8]](repeating: line, count: 1000).joined()))
        sleep(2)
        let grown = try residentKilobytes() - before
        #expect(grown < 30_000, "the daemon grew by \(grown) KB for a client that reads nothing")
        try daemon.expectServesOtherConnections()
        // Once it reads, every reply comes, in order.
        var count = 0
        while count < 1000, let reply = try greedy.readLine() {
            #expect(try JSONParser.parse(reply).field("result.openrpc") != nil)
            count += 1
        }
        #expect(count == 1000)
        greedy.close()
        #expect(try daemon.terminate() == 0)
    }

    @Test("batchReplyBytesMax: past it, reads in a batch get 2002 OVERLOADED instead of their result; commands keep theirs")
    func batchReplyCap() throws {
        let daemon = try Self.startDaemon(limit: "batchReplyBytesMax", 100000)
        var batch: [JSONValue] = (1...5).map { ["jsonrpc": "2.0", "id": .integer($0), "method": "rpc.discover"] }
        batch.append(["jsonrpc": "2.0", "id": 6, "method": "provisionCustomer", "params": ["customerId": "capped"]])
        batch.append(["jsonrpc": "2.0", "id": 7, "method": "getStatus"])
        let connection = try daemon.connect()
        try connection.sendLine(JSONValue.array(batch).serialized())
        let replies = try #require(try connection.readReply().arrayValue)
        #expect(replies.map { $0["id"] } == (1...7).map { .integer($0) })
        // Two documents (~38 KB each) fit in 100,000 bytes, a third does not. Which two depends on
        // the order the reads finish in (they run off the event loops), not on their place.
        let kept = replies[0..<5].filter { $0.field("result.openrpc") != nil }
        #expect(kept.count == 2, "\(replies.map { $0["id"] })")
        for reply in replies[0..<5] where reply.field("result.openrpc") == nil {
            expectError(reply, code: 2002, id: reply["id"] ?? .null)
            #expect(reply.field("error.data.reason") == "OVERLOADED" && reply.field("error.message")?.stringValue?.contains("100000") == true, "\(reply.jsonText)")
        }
        #expect(replies[5].field("result.id") == "capped", "a command's response is always kept")
        #expect(replies[6].field("result.version") != nil, "a small read still fits")
        #expect(try daemon.call("getCustomer", ["customerId": "capped"])["id"] == "capped")
        connection.close()
        #expect(try daemon.terminate() == 0)
    }

    @Test("batchReplyBytesMax: once a batch's reply is full, a command's result is left out too — 2001 saying it was applied and how to read it — so a batch of large command results cannot hold unbounded memory; every command still applied once")
    func batchReplyCapForCommands() throws {
        let daemon = try Self.startDaemon(limit: "batchReplyBytesMax", 4096)
        let metadata: JSONValue = ["note": .string(String(repeating: "m", count: 400))]
        var batch: [JSONValue] = (1...30).map { i in
            ["jsonrpc": "2.0", "id": .integer(i), "method": "provisionCustomer", "params": ["customerId": .string("big-\(i)"), "metadata": metadata, "idempotencyKey": .string("k-\(i)")]]
        }
        batch.append(["jsonrpc": "2.0", "id": 31, "method": "getCustomer", "params": ["customerId": "big-1"]])
        let connection = try daemon.connect()
        defer { connection.close() }
        try connection.sendLine(JSONValue.array(batch).serialized())
        let replies = try #require(try connection.readReply().arrayValue)
        #expect(replies.map { $0["id"] } == (1...31).map { .integer($0) })
        let kept = replies[0..<30].filter { $0.field("result.id") != nil }
        let leftOut = replies[0..<30].filter { $0["error"] != nil }
        #expect(kept.count >= 1 && kept.count < 15 && kept.count + leftOut.count == 30, "\(kept.count) kept, \(leftOut.count) left out")
        for reply in leftOut {
            #expect(reply.field("error.code") == 2001 && reply.field("error.message")?.stringValue?.contains("was applied") == true, "\(reply.jsonText)")
        }
        expectError(replies[30], code: 2002, id: 31)
        // Every one applied; its key reads its result back.
        let status = try daemon.call("getStatus")
        #expect(status["lastSequence"] == 30, "\(status.jsonText)")
        if let first = leftOut.first, let id = first["id"]?.intValue {
            let again = try daemon.call("provisionCustomer", ["customerId": .string("big-\(id)"), "metadata": metadata, "idempotencyKey": .string("k-\(id)")])
            #expect(again["id"] == .string("big-\(id)") && again["duplicate"] == true, "\(again.jsonText)")
        }
        #expect(try daemon.terminate() == 0)
    }

    @Test("a client that pipelines far more reads than the daemon holds unwritten and leaves without reading: the lines not yet started are dropped with the connection, not run for no one (its trailing command is not applied)")
    func leftLinesAreNotRun() throws {
        let daemon = try LiveDaemon().start()
        let metadata = JSONValue.object(JSONObject((0..<64).map { ("k\($0)", .string(String(repeating: "x", count: 1024))) }))
        _ = try daemon.call("provisionCustomer", ["customerId": "big", "metadata": metadata])  // a 67 KB reply
        let baseline = try daemon.call("getStatus")["connections"]?.intValue ?? 0
        let read = Array(#"{"jsonrpc":"2.0","id":1,"method":"getCustomer","params":{"customerId":"big"}}"#.utf8) + [0x0A]
        let marker = Array(#"{"jsonrpc":"2.0","id":2,"method":"provisionCustomer","params":{"customerId":"left-behind"}}"#.utf8)
        let leaving = try daemon.connect()
        // ~100 MB of replies owed, far past what the daemon keeps unwritten; the marker comes last.
        try leaving.sendLine(Array(repeating: read, count: 1500).flatMap { $0 } + marker)
        usleep(300_000)
        leaving.close()
        // Once the daemon has let the connection go, what it held of it is gone.
        var connections = baseline + 1
        for _ in 0..<200 where connections > baseline {
            usleep(50_000)
            connections = try daemon.call("getStatus")["connections"]?.intValue ?? 0
        }
        #expect(connections <= baseline, "the connection was not let go")
        usleep(500_000)
        _ = expectRPCError(code: 1001, reason: "CUSTOMER_NOT_FOUND") { _ = try daemon.call("getCustomer", ["customerId": "left-behind"]) }
        #expect(try daemon.terminate() == 0)
    }

    @Test("idleTimeoutSeconds 1: an idle connection is closed within ~3 s, a busy one is not")
    func idleTimeout() throws {
        let daemon = try Self.startDaemon(limit: "idleTimeoutSeconds", 1)

        let idle = try daemon.connect(timeoutSeconds: 2)
        let busy = try daemon.connect(timeoutSeconds: 2)
        _ = try idle.call("getStatus")  // it did talk once; then it falls silent
        let start = Date()
        while Date().timeIntervalSince(start) < 3 {
            _ = try busy.call("getStatus")
            usleep(200_000)
        }
        // Closed by the daemon by now: readLine returns nil (it would time out after 2 s and
        // throw if the connection were still open).
        #expect(try idle.readLine() == nil, "the idle connection must be closed by the daemon")
        #expect(Date().timeIntervalSince(start) < 4.5, "closed about 1 s after its last request")
        // The busy one is still served.
        #expect(try busy.call("getStatus")["version"] != nil)
        #expect(try daemon.terminate() == 0)
    }
}
