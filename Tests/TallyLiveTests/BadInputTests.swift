import Foundation
import TallyClient
import TallyProtocol
import Testing

/// Every kind of bad input the contract's "Transport" and "Errors" sections name, through the real
/// daemon: the exact code, the echoed id, nothing appended to the ledger, and the daemon still
/// serving other connections afterwards.
///
/// Serialized: tests compare `getStatus.lastSequence` before and after, so none may write while
/// another is between the two reads.
@Suite("bad input through the real daemon", .serialized, .sharedDaemon)
struct BadInputTests {
    let daemon: LiveDaemon

    init() throws { daemon = try SharedDaemon.get() }

    static let parseError = -32700
    static let invalidRequest = -32600
    static let methodNotFound = -32601
    static let invalidParams = -32602

    /// Runs `body`, then checks that the ledger did not grow and a new connection is served.
    func expectNothingAppended(sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) throws {
        let before = try daemon.lastSequence()
        try body()
        let after = try daemon.lastSequence()
        #expect(after == before, "the ledger grew from \(before) to \(after)", sourceLocation: sourceLocation)
        try daemon.expectServesOtherConnections(sourceLocation: sourceLocation)
    }

    /// A provisionCustomer line for a fresh id, and that id: applied, it would append an event.
    func provisionLine(id: String = "1", _ customer: String) -> String {
        #"{"jsonrpc":"2.0","id":\#(id),"method":"provisionCustomer","params":{"customerId":"\#(customer)"}}"#
    }

    func expectCustomerAbsent(_ customer: String, sourceLocation: SourceLocation = #_sourceLocation) {
        expectRPCError(code: 1001, reason: "CUSTOMER_NOT_FOUND", sourceLocation: sourceLocation) {
            _ = try daemon.call("getCustomer", ["customerId": .string(customer)])
        }
    }

    // MARK: - Parse errors

    @Test(
        "invalid JSON gets -32700 with id null, and the connection goes on",
        arguments: [
            "{bad",
            #"{"jsonrpc":"2.0","id":1,"method":"provisionCustomer","params":{"customerId":"PLACEHOLDER"}"#,
            #"{"jsonrpc":"2.0","id":1,"method":"provisionCustomer","params":{"customerId":"PLACEHOLDER"}},"#,
            #"{"jsonrpc":"2.0","id":1,"method":"provisionCustomer","params":{"customerId":'PLACEHOLDER'}}"#,
            #"{"jsonrpc":"2.0","id":01,"method":"provisionCustomer","params":{"customerId":"PLACEHOLDER"}}"#,
            "nul",
            "\u{FEFF}{}",
        ])
    func invalidJSON(line: String) throws {
        let customer = uniqueID("parse")
        try expectNothingAppended {
            let connection = try daemon.connect()
            defer { connection.close() }
            let reply = try connection.exchange(line.replacingOccurrences(of: "PLACEHOLDER", with: customer))
            expectError(reply, code: Self.parseError, id: .null, messageContains: "Parse error")
            // A parse error does not close the connection.
            expectResult(try connection.exchange(#"{"jsonrpc":"2.0","id":"after","method":"getStatus"}"#), id: "after")
        }
        expectCustomerAbsent(customer)
    }

    @Test(
        "invalid UTF-8 in a line gets -32700 with id null",
        arguments: [
            [0xFF],  // never valid
            [0xC0, 0xAF],  // overlong "/"
            [0xED, 0xA0, 0x80],  // an encoded surrogate
            [0xE2, 0x82],  // truncated sequence
            [0xF4, 0x90, 0x80, 0x80],  // above U+10FFFF
        ] as [[UInt8]])
    func invalidUTF8(bad: [UInt8]) throws {
        let customer = uniqueID("utf8")
        try expectNothingAppended {
            let connection = try daemon.connect()
            defer { connection.close() }
            // Inside a string value...
            var line = Array(#"{"jsonrpc":"2.0","id":1,"method":"provisionCustomer","params":{"customerId":"\#(customer)","name":"x"#.utf8)
            line += bad
            line += Array(#""}}"#.utf8)
            try connection.sendLine(line)
            expectError(try connection.readReply(), code: Self.parseError, id: .null, messageContains: "UTF-8")
            // ...and in a key.
            var keyLine = Array(#"{"jsonrpc":"2.0","id":2,"method":"provisionCustomer","params":{"customerId":"\#(customer)",""#.utf8)
            keyLine += bad
            keyLine += Array(#"":"x"}}"#.utf8)
            try connection.sendLine(keyLine)
            expectError(try connection.readReply(), code: Self.parseError, id: .null, messageContains: "UTF-8")
            expectResult(try connection.exchange(#"{"jsonrpc":"2.0","id":3,"method":"getStatus"}"#), id: 3)
        }
        expectCustomerAbsent(customer)
    }

    @Test("600 levels of nesting get -32700 mentioning nesting")
    func deepNesting() throws {
        let customer = uniqueID("deep")
        try expectNothingAppended {
            let connection = try daemon.connect()
            defer { connection.close() }
            let arrays = String(repeating: "[", count: 600) + String(repeating: "]", count: 600)
            expectError(try connection.exchange(arrays), code: Self.parseError, id: .null, messageContains: "nesting")
            // Deep inside an otherwise good command: nothing of it is applied.
            let objects = String(repeating: #"{"a":"#, count: 600) + "1" + String(repeating: "}", count: 600)
            let line = #"{"jsonrpc":"2.0","id":5,"method":"provisionCustomer","params":{"customerId":"\#(customer)","metadata":\#(objects)}}"#
            expectError(try connection.exchange(line), code: Self.parseError, id: .null, messageContains: "nesting")
            expectResult(try connection.exchange(#"{"jsonrpc":"2.0","id":6,"method":"getStatus"}"#), id: 6)
        }
        expectCustomerAbsent(customer)
    }

    // MARK: - Not a request

    @Test(
        "a JSON value that is not a request object gets -32600 with id null",
        arguments: ["42", #""x""#, "null", "true", "-1.5e3", #"{"jsonrpc":"2.0"}"#])
    func notARequest(line: String) throws {
        try expectNothingAppended {
            expectError(try daemon.exchange(line), code: Self.invalidRequest, id: .null)
        }
    }

    @Test("non-objects inside a batch each get -32600 with id null, in order")
    func nonObjectsInBatch() throws {
        try expectNothingAppended {
            let reply = try daemon.exchange(#"[1,"x",[],{"jsonrpc":"2.0","id":"ok","method":"getStatus"},null]"#)
            let elements = try #require(reply.arrayValue, "a batch gets an array: \(reply.jsonText)")
            try #require(elements.count == 5, "\(reply.jsonText)")
            for index in [0, 1, 2, 4] {
                expectError(elements[index], code: Self.invalidRequest, id: .null)
            }
            expectResult(elements[3], id: "ok")
            let single = try daemon.exchange("[1]")
            let only = try #require(single.arrayValue, "[1] gets an array of one error: \(single.jsonText)")
            try #require(only.count == 1)
            expectError(only[0], code: Self.invalidRequest, id: .null)
        }
    }

    @Test("a missing or non-string method gets -32600 with the id echoed")
    func badMethod() throws {
        try expectNothingAppended {
            let connection = try daemon.connect()
            defer { connection.close() }
            expectError(try connection.exchange(#"{"jsonrpc":"2.0","id":7}"#), code: Self.invalidRequest, id: 7, messageContains: "method")
            expectError(try connection.exchange(#"{"jsonrpc":"2.0","id":8,"method":5}"#), code: Self.invalidRequest, id: 8, messageContains: "method")
            expectError(try connection.exchange(#"{"jsonrpc":"2.0","id":"m","method":null}"#), code: Self.invalidRequest, id: "m")
            expectError(try connection.exchange(#"{"jsonrpc":"2.0","id":9,"method":["getStatus"]}"#), code: Self.invalidRequest, id: 9)
            expectError(try connection.exchange(#"{"jsonrpc":"2.0","id":10,"method":{"name":"getStatus"}}"#), code: Self.invalidRequest, id: 10)
        }
    }

    @Test("jsonrpc missing, \"1.0\" or not a string gets -32600 with the id echoed")
    func badVersion() throws {
        let customer = uniqueID("version")
        try expectNothingAppended {
            let connection = try daemon.connect()
            defer { connection.close() }
            let params = #""method":"provisionCustomer","params":{"customerId":"\#(customer)"}"#
            expectError(try connection.exchange(#"{"id":1,\#(params)}"#), code: Self.invalidRequest, id: 1, messageContains: "jsonrpc")
            expectError(try connection.exchange(#"{"jsonrpc":"1.0","id":2,\#(params)}"#), code: Self.invalidRequest, id: 2, messageContains: "jsonrpc")
            expectError(try connection.exchange(#"{"jsonrpc":2.0,"id":3,\#(params)}"#), code: Self.invalidRequest, id: 3)
            expectError(try connection.exchange(#"{"jsonrpc":null,"id":4,\#(params)}"#), code: Self.invalidRequest, id: 4)
            // An unknown envelope member is refused too (current behaviour), id echoed.
            expectError(try connection.exchange(#"{"jsonrpc":"2.0","id":5,"extra":1,\#(params)}"#), code: Self.invalidRequest, id: 5, messageContains: "extra")
        }
        expectCustomerAbsent(customer)
    }

    @Test("duplicate keys get -32600 with id null and a message naming the key")
    func duplicateKeys() throws {
        let customer = uniqueID("dup")
        let other = uniqueID("dup")
        try expectNothingAppended {
            let connection = try daemon.connect()
            defer { connection.close() }
            let inParams = #"{"jsonrpc":"2.0","id":1,"method":"provisionCustomer","params":{"customerId":"\#(customer)","customerId":"\#(other)"}}"#
            expectError(try connection.exchange(inParams), code: Self.invalidRequest, id: .null, messageContains: #"duplicate key "customerId""#)
            let inEnvelope = #"{"jsonrpc":"2.0","id":1,"id":2,"method":"getStatus"}"#
            expectError(try connection.exchange(inEnvelope), code: Self.invalidRequest, id: .null, messageContains: #"duplicate key "id""#)
            let inMetadata = #"{"jsonrpc":"2.0","id":3,"method":"provisionCustomer","params":{"customerId":"\#(customer)","metadata":{"k":"1","k":"2"}}}"#
            expectError(try connection.exchange(inMetadata), code: Self.invalidRequest, id: .null, messageContains: #"duplicate key "k""#)
        }
        expectCustomerAbsent(customer)
        expectCustomerAbsent(other)
    }

    // MARK: - Methods and params

    @Test("an unknown method gets -32601 naming it; as a notification it gets no reply")
    func unknownMethod() throws {
        try expectNothingAppended {
            let connection = try daemon.connect()
            defer { connection.close() }
            let reply = try connection.exchange(#"{"jsonrpc":"2.0","id":"u1","method":"deleteEverything","params":{}}"#)
            expectError(reply, code: Self.methodNotFound, id: "u1")
            #expect(reply.field("error.data.method") == "deleteEverything", "\(reply.jsonText)")
            // No reply to the notification: the next line read answers the getStatus after it.
            try connection.sendLine(Array(#"{"jsonrpc":"2.0","method":"deleteEverything"}"#.utf8))
            expectResult(try connection.exchange(#"{"jsonrpc":"2.0","id":"u2","method":"getStatus"}"#), id: "u2")
        }
    }

    @Test("params that are not an object get -32602 on params; a notification with them gets no reply")
    func paramsWrongType() throws {
        try expectNothingAppended {
            let connection = try daemon.connect()
            defer { connection.close() }
            for (index, params) in ["[1]", "[]", #""customerId""#, "5", "true"].enumerated() {
                let line = #"{"jsonrpc":"2.0","id":\#(index),"method":"provisionCustomer","params":\#(params)}"#
                expectError(try connection.exchange(line), code: Self.invalidParams, id: .integer(index), field: "params")
            }
            // A notification is never answered, whatever is wrong with its params.
            try connection.sendLine(Array(#"{"jsonrpc":"2.0","method":"provisionCustomer","params":[1]}"#.utf8))
            try connection.sendLine(Array(#"{"jsonrpc":"2.0","method":"getStatus","params":"x"}"#.utf8))
            expectResult(try connection.exchange(#"{"jsonrpc":"2.0","id":"next","method":"getStatus"}"#), id: "next")
        }
    }

    @Test("a param of the wrong type gets -32602 with data.field naming it")
    func paramOfWrongType() throws {
        try expectNothingAppended {
            let connection = try daemon.connect()
            defer { connection.close() }
            let cases: [(String, String, String)] = [
                ("provisionCustomer", #"{"customerId":12}"#, "customerId"),
                ("provisionCustomer", #"{"customerId":null}"#, "customerId"),
                ("provisionCustomer", #"{"customerId":"\#(uniqueID("type"))","name":7}"#, "name"),
                ("provisionCustomer", #"{"customerId":"\#(uniqueID("type"))","email":["a"]}"#, "email"),
                ("provisionCustomer", #"{"customerId":"\#(uniqueID("type"))","metadata":"plan=pro"}"#, "metadata"),
                ("provisionCustomer", #"{"customerId":"\#(uniqueID("type"))","metadata":{"plan":1}}"#, "metadata.plan"),
                ("provisionCustomer", #"{"customerId":"\#(uniqueID("type"))","idempotencyKey":1}"#, "idempotencyKey"),
                ("getCustomer", #"{"customerId":12}"#, "customerId"),
                ("getCustomer", #"{"customerId":{"id":"x"}}"#, "customerId"),
                ("listCustomers", #"{"limit":"10"}"#, "limit"),
                ("listCustomers", #"{"limit":1.5}"#, "limit"),
                ("listCustomers", #"{"limit":0}"#, "limit"),
                ("listCustomers", #"{"after":3}"#, "after"),
                ("readLedger", #"{"after":-1}"#, "after"),
                ("readLedger", #"{"limit":true}"#, "limit"),
            ]
            for (index, (method, params, field)) in cases.enumerated() {
                let line = #"{"jsonrpc":"2.0","id":\#(index),"method":"\#(method)","params":\#(params)}"#
                expectError(try connection.exchange(line), code: Self.invalidParams, id: .integer(index), field: field)
            }
            // A whole number written with a fraction or an exponent is an integer, as JSON Schema counts it.
            for text in ["2.0", "2e0", "0.2E1"] {
                let reply = try connection.exchange(#"{"jsonrpc":"2.0","id":"w","method":"readLedger","params":{"after":0.0,"limit":\#(text)}}"#)
                let events = expectResult(reply, id: "w")["events"]?.arrayValue
                #expect(events.map { $0.count <= 2 } == true, "limit \(text): \(reply.jsonText.prefix(300))")
            }
        }
    }

    @Test("a missing required field gets -32602 with data.field")
    func missingField() throws {
        try expectNothingAppended {
            let connection = try daemon.connect()
            defer { connection.close() }
            expectError(try connection.exchange(#"{"jsonrpc":"2.0","id":1,"method":"provisionCustomer","params":{}}"#), code: Self.invalidParams, id: 1, field: "customerId")
            expectError(try connection.exchange(#"{"jsonrpc":"2.0","id":2,"method":"provisionCustomer"}"#), code: Self.invalidParams, id: 2, field: "customerId")
            expectError(try connection.exchange(#"{"jsonrpc":"2.0","id":3,"method":"provisionCustomer","params":{"name":"No Id"}}"#), code: Self.invalidParams, id: 3, field: "customerId")
            expectError(try connection.exchange(#"{"jsonrpc":"2.0","id":4,"method":"getCustomer","params":{}}"#), code: Self.invalidParams, id: 4, field: "customerId")
            // An empty id is not an id.
            expectError(try connection.exchange(#"{"jsonrpc":"2.0","id":5,"method":"provisionCustomer","params":{"customerId":""}}"#), code: Self.invalidParams, id: 5, field: "customerId")
        }
    }

    @Test("an email that is not an email address (the seed Customer schema's format) gets -32602 on email; real ones are kept as given")
    func email() throws {
        let customer = uniqueID("mail")
        try expectNothingAppended {
            for bad in ["not an email", "", "a@", "@example.com", "a@@example.com", "a..b@example.com", ".a@example.com", "a@-x.com", "a@x..com", "a b@x.com", "a@x_y.com", "\"q\"@x.com",
                        // Address literals that are none (RFC 5321: IPv4, IPv6:…, or tag:content).
                        "a@[foo]", "a@[]", "a@[1.2.3.999]", "a@[1.2.3]", "a@[1.2.3.4.5]", "a@[01.2.3.4]", "a@[IPv6:zz]", "a@[x:]", "a@[ 1.2.3.4]", "a@[-x:y]"] {
                let reply = try daemon.exchange(JSONValue.object(["jsonrpc": "2.0", "id": 1, "method": "provisionCustomer", "params": ["customerId": .string(customer), "email": .string(bad)]]).serialized())
                expectError(reply, code: Self.invalidParams, id: 1, field: "email", messageContains: "email address")
            }
        }
        expectCustomerAbsent(customer)
        for good in ["a.b+tag@example.co.uk", "o'neil@x-y.example", "root@[192.168.0.1]", "UPPER@Example.COM", "ops@[IPv6:2001:db8::1]", "x@[tag-1:any~content]"] {
            let result = try daemon.call("provisionCustomer", ["customerId": .string(customer), "email": .string(good)])
            #expect(result["email"] == .string(good), "\(result.jsonText)")
        }
    }

    @Test("free text (display names, symbol, unit, comment, search) is capped at 1024 bytes: -32602 naming the field, nothing appended")
    func freeTextCapped() throws {
        let long = String(repeating: "é", count: 513)  // 1026 bytes, 513 characters
        let cases: [(String, JSONObject, String)] = [
            ("defineCurrency", ["currencyId": .string(uniqueID("cur")), "displayName": .string(long)], "displayName"),
            ("defineCurrency", ["currencyId": .string(uniqueID("cur")), "displayName": "C", "symbol": .string(long)], "symbol"),
            ("defineFeature", ["featureId": .string(uniqueID("f")), "type": "METERED", "displayName": .string(long)], "displayName"),
            ("defineFeature", ["featureId": .string(uniqueID("f")), "type": "METERED", "unit": .string(long)], "unit"),
            ("definePlan", ["planId": .string(uniqueID("p")), "displayName": .string(long), "entitlements": []], "displayName"),
            ("grantCredits", ["customerId": "c", "currencyId": "c", "amount": "1", "grantType": "PAID", "comment": .string(long)], "comment"),
            ("grantCredits", ["customerId": "c", "currencyId": "c", "amount": "1", "grantType": "PAID", "displayName": .string(long)], "displayName"),
            ("listDimensionKeys", ["customerId": "c", "search": .string(long)], "search"),
        ]
        try expectNothingAppended {
            for (method, params, field) in cases {
                let reply = try daemon.exchange(JSONValue.object(["jsonrpc": "2.0", "id": 1, "method": .string(method), "params": .object(params)]).serialized())
                expectError(reply, code: Self.invalidParams, id: 1, field: field, messageContains: "at most 1024 bytes")
            }
        }
        let fits = try daemon.call("defineCurrency", ["currencyId": .string(uniqueID("cur")), "displayName": .string(String(repeating: "é", count: 512))])
        #expect(fits["displayName"]?.stringValue?.utf8.count == 1024, "\(fits.jsonText)")
    }

    @Test("an unknown params field gets -32602 naming it")
    func unknownField() throws {
        let customer = uniqueID("typo")
        try expectNothingAppended {
            let connection = try daemon.connect()
            defer { connection.close() }
            let reply = try connection.exchange(#"{"jsonrpc":"2.0","id":1,"method":"provisionCustomer","params":{"customerId":"\#(customer)","nmae":"Acme"}}"#)
            expectError(reply, code: Self.invalidParams, id: 1, field: "nmae", messageContains: "nmae")
            expectError(try connection.exchange(#"{"jsonrpc":"2.0","id":2,"method":"getStatus","params":{"verbose":true}}"#), code: Self.invalidParams, id: 2, field: "verbose")
            expectError(try connection.exchange(#"{"jsonrpc":"2.0","id":3,"method":"getCustomer","params":{"customerID":"x"}}"#), code: Self.invalidParams, id: 3)
        }
        expectCustomerAbsent(customer)
    }

    // MARK: - Numbers and ids

    @Test("a 10,000-digit id is echoed exactly; as limit or after it gets -32602")
    func hugeNumber() throws {
        let digits = "9" + String(repeating: "0123456789", count: 1000).dropFirst()
        #expect(digits.count == 10_000)
        try expectNothingAppended {
            let connection = try daemon.connect()
            defer { connection.close() }
            try connection.sendLine(Array(#"{"jsonrpc":"2.0","id":\#(digits),"method":"getStatus"}"#.utf8))
            let line = try #require(try connection.readLine())
            let text = String(decoding: line, as: UTF8.self)
            #expect(text.contains(#""id":\#(digits),"#), "the id must come back digit for digit")
            expectResult(try JSONParser.parse(line), id: .number(digits))

            let limit = #"{"jsonrpc":"2.0","id":2,"method":"listCustomers","params":{"limit":\#(digits)}}"#
            expectError(try connection.exchange(limit), code: Self.invalidParams, id: 2, field: "limit")
            let after = #"{"jsonrpc":"2.0","id":3,"method":"readLedger","params":{"after":\#(digits)}}"#
            expectError(try connection.exchange(after), code: Self.invalidParams, id: 3, field: "after")
        }
    }

    @Test(
        "string, number and null ids are echoed exactly as written",
        arguments: [
            #""abc""#, #""""#, #""with \"quotes\" and \\ and \u00e9 and 😀""#, #""1""#,
            "0", "42", "-7", "3.25", "-0.5", "1e3", "1E+2", "-1.5e-7", "2.50", "1E+400", "123456789012345678901234567890",
            "null",
        ])
    func idsEchoed(idText: String) throws {
        try expectNothingAppended {
            let connection = try daemon.connect()
            defer { connection.close() }
            let id = try JSONParser.parse(idText)
            try connection.sendLine(Array(#"{"jsonrpc":"2.0","id":\#(idText),"method":"getStatus"}"#.utf8))
            let line = try #require(try connection.readLine())
            let reply = try JSONParser.parse(line)
            expectResult(reply, id: id)
            if case .number = id {
                // Numbers keep their exact text: 1E+2 is not rewritten as 100.
                #expect(String(decoding: line, as: UTF8.self).contains(#""id":\#(idText),"#))
            }
            // The same for an error reply.
            let error = try connection.exchange(#"{"jsonrpc":"2.0","id":\#(idText),"method":"nope"}"#)
            expectError(error, code: Self.methodNotFound, id: id)
        }
    }

    @Test(
        "a boolean, object or array id gets -32600 with id null, and the command is not applied",
        arguments: ["true", "false", "{}", #"{"n":1}"#, "[]", "[1]"])
    func badIDType(idText: String) throws {
        let customer = uniqueID("badid")
        try expectNothingAppended {
            let reply = try daemon.exchange(provisionLine(id: idText, customer))
            expectError(reply, code: Self.invalidRequest, id: .null, messageContains: "id")
        }
        expectCustomerAbsent(customer)
    }

    // MARK: - Batches

    @Test("a batch mixing good and bad requests: each answered in order, notifications omitted")
    func mixedBatch() throws {
        let customer = uniqueID("batch")
        let notified = uniqueID("batch-note")
        let before = try daemon.lastSequence()
        let batch = """
            [{"jsonrpc":"2.0","id":1,"method":"provisionCustomer","params":{"customerId":"\(customer)","name":"Batch"}},\
            42,\
            {"jsonrpc":"2.0","id":3},\
            {"jsonrpc":"2.0","method":"provisionCustomer","params":{"customerId":"\(notified)"}},\
            {"jsonrpc":"2.0","id":"five","method":"getCustomer","params":{"customerId":7}},\
            {"jsonrpc":"2.0","id":6,"method":"noSuchMethod"},\
            {"jsonrpc":"2.0","method":"noSuchMethod"},\
            {"jsonrpc":"1.0","id":8,"method":"getStatus"},\
            {"jsonrpc":"2.0","id":9,"method":"provisionCustomer","params":{"customerId":"\(uniqueID("never"))","bogus":1}},\
            {"jsonrpc":"2.0","id":null,"method":"getStatus"},\
            {"jsonrpc":"2.0","id":true,"method":"getStatus"},\
            {"jsonrpc":"2.0","id":12,"method":"provisionCustomer","params":{"customerId":"\(uniqueID("never"))","name":"a","name":"b"}}]
            """
        let reply = try daemon.exchange(batch)
        let elements = try #require(reply.arrayValue, "a batch gets an array: \(reply.jsonText)")
        try #require(elements.count == 10, "two notifications omitted from 12: \(reply.jsonText)")
        let provisioned = expectResult(elements[0], id: 1)
        #expect(provisioned["id"] == .string(customer))
        #expect(provisioned["name"] == "Batch")
        expectError(elements[1], code: Self.invalidRequest, id: .null)
        expectError(elements[2], code: Self.invalidRequest, id: 3)
        expectError(elements[3], code: Self.invalidParams, id: "five", field: "customerId")
        expectError(elements[4], code: Self.methodNotFound, id: 6)
        expectError(elements[5], code: Self.invalidRequest, id: 8)
        expectError(elements[6], code: Self.invalidParams, id: 9, field: "bogus")
        expectResult(elements[7], id: .null)
        expectError(elements[8], code: Self.invalidRequest, id: .null)
        // A duplicate key fails its own element only (JSON-RPC 2.0 answers a batch element by element).
        expectError(elements[9], code: Self.invalidRequest, id: .null, messageContains: #"duplicate key "name""#)
        // Exactly the two good provisions were applied, the notification's included.
        #expect(try daemon.lastSequence() == before + 2)
        #expect(try daemon.call("getCustomer", ["customerId": .string(notified)])["id"] == .string(notified))
        try daemon.expectServesOtherConnections()
    }

    @Test("an empty batch gets one -32600 reply object, not an array")
    func emptyBatch() throws {
        try expectNothingAppended {
            let connection = try daemon.connect()
            defer { connection.close() }
            for line in ["[]", "[ ]", " [\t] "] {
                let reply = try connection.exchange(line)
                #expect(reply.arrayValue == nil, "\(reply.jsonText)")
                expectError(reply, code: Self.invalidRequest, id: .null)
            }
        }
    }

    @Test("a batch of only notifications gets no reply line at all")
    func notificationOnlyBatch() throws {
        let first = uniqueID("note"), second = uniqueID("note")
        let before = try daemon.lastSequence()
        let connection = try daemon.connect()
        defer { connection.close() }
        let batch = """
            [{"jsonrpc":"2.0","method":"provisionCustomer","params":{"customerId":"\(first)"}},\
            {"jsonrpc":"2.0","method":"getStatus"},\
            {"jsonrpc":"2.0","method":"unknownMethod"},\
            {"jsonrpc":"2.0","method":"getCustomer","params":{"customerId":"does-not-exist"}},\
            {"jsonrpc":"2.0","method":"provisionCustomer","params":{"customerId":"\(second)"}}]
            """
        try connection.sendLine(Array(batch.utf8))
        // The next line read must be the answer to this getStatus: the batch produced none.
        let status = expectResult(try connection.exchange(#"{"jsonrpc":"2.0","id":"after-batch","method":"getStatus"}"#), id: "after-batch")
        // Read-your-writes on the connection: the two notified provisions are in.
        #expect(status["lastSequence"] == .integer(before + 2), "\(status.jsonText)")
        for customer in [first, second] {
            #expect(try daemon.call("getCustomer", ["customerId": .string(customer)])["id"] == .string(customer))
        }
        try daemon.expectServesOtherConnections()
    }

    // MARK: - Framing

    /// `{"jsonrpc":"2.0", <padding> "id":…}`: a good command once the padding is skipped, so only
    /// the frame limit keeps it from being applied.
    func paddedProvision(_ customer: String, totalBytes: Int) -> [UInt8] {
        let head = Array(#"{"jsonrpc":"2.0","#.utf8)
        let tail = Array(#""id":"big","method":"provisionCustomer","params":{"customerId":"\#(customer)"}}"#.utf8)
        return head + [UInt8](repeating: UInt8(ascii: " "), count: totalBytes - head.count - tail.count) + tail
    }

    @Test("a 2 MiB line gets -32700 with id null, then the connection is closed; nothing is applied")
    func oversizedLine() throws {
        let customer = uniqueID("big")
        try expectNothingAppended {
            let connection = try daemon.connect()
            defer { connection.close() }
            // The daemon may hang up before it has read all of it: a failed send is expected.
            _ = try? connection.sendLine(paddedProvision(customer, totalBytes: 2 << 20))
            let reply = try connection.readReply()
            expectError(reply, code: Self.parseError, id: .null, messageContains: "limit")
            #expect(try connection.readLine() == nil, "the connection must be closed after an oversized line")
        }
        expectCustomerAbsent(customer)
    }

    @Test("a line of exactly the frame limit (1 MiB, CRLF not counted) is accepted; one byte more is not")
    func frameLimitBoundary() throws {
        let limit = 1 << 20
        let fits = uniqueID("fits"), over = uniqueID("over")
        let before = try daemon.lastSequence()
        do {
            let connection = try daemon.connect()
            defer { connection.close() }
            try connection.sendLine(paddedProvision(fits, totalBytes: limit) + Array("\r\n".utf8))
            let created = expectResult(try connection.readReply(), id: "big")
            #expect(created["id"] == .string(fits))
        }
        #expect(try daemon.lastSequence() == before + 1)
        // The same with the "\r" arriving before its "\n": the "\r" is not part of the line.
        let split = uniqueID("split")
        do {
            let socket = try RawSocket(path: daemon.socketPath)
            defer { socket.close() }
            try socket.write(paddedProvision(split, totalBytes: limit) + [UInt8(ascii: "\r")])
            usleep(100_000)
            try socket.write([UInt8(ascii: "\n")])
            let line = try #require(try socket.readLine(), "the daemon hung up on a line of exactly the limit")
            let created = expectResult(try JSONParser.parse(line), id: "big")
            #expect(created["id"] == .string(split))
        }
        #expect(try daemon.lastSequence() == before + 2)
        try expectNothingAppended {
            let connection = try daemon.connect()
            defer { connection.close() }
            _ = try? connection.sendLine(paddedProvision(over, totalBytes: limit + 1))
            expectError(try connection.readReply(), code: Self.parseError, id: .null)
            #expect(try connection.readLine() == nil)
        }
        expectCustomerAbsent(over)
    }

    @Test("a client that hangs up mid-line: the partial request is not applied")
    func disconnectMidLine() throws {
        let half = uniqueID("half"), whole = uniqueID("whole")
        try expectNothingAppended {
            let observer = try daemon.connect()
            defer { observer.close() }
            /// Waits until the daemon counts `count` open connections (the observer's included).
            func awaitConnections(_ count: Int) throws {
                let deadline = Date().addingTimeInterval(5)
                while try observer.call("getStatus")["connections"] != .integer(count), Date() < deadline { usleep(10_000) }
                #expect(try observer.call("getStatus")["connections"] == .integer(count))
            }
            try awaitConnections(1)
            let hangUps: [[UInt8]] = [
                Array(provisionLine(half).utf8.prefix(40)),
                // A complete request without its newline is still a partial line.
                Array(provisionLine(whole).utf8),
                // A connection that finished a line before hanging up mid-way through the next.
                Array((#"{"jsonrpc":"2.0","method":"getStatus"}"# + "\n" + provisionLine(whole)).utf8),
            ]
            for bytes in hangUps {
                let socket = try RawSocket(path: daemon.socketPath)
                try socket.write(bytes)
                try awaitConnections(2)  // accepted and reading
                socket.close()
                try awaitConnections(1)  // the hang-up was seen
            }
        }
        expectCustomerAbsent(half)
        expectCustomerAbsent(whole)
    }

    @Test("CRLF-terminated lines work, pipelined too")
    func crlf() throws {
        let customer = uniqueID("crlf")
        let connection = try daemon.connect()
        defer { connection.close() }
        let lines = provisionLine(id: "\"p\"", customer) + "\r\n"
            + #"{"jsonrpc":"2.0","id":"g","method":"getCustomer","params":{"customerId":"\#(customer)"}}"# + "\r\n"
        try connection.sendLine(Array(lines.utf8))
        let created = expectResult(try connection.readReply(), id: "p")
        let read = expectResult(try connection.readReply(), id: "g")
        #expect(created["id"] == .string(customer))
        #expect(read == created)
        // Blank lines (CRLF alone) are keep-alives: no reply.
        try connection.sendLine(Array("\r\n\r\n".utf8))
        expectResult(try connection.exchange(#"{"jsonrpc":"2.0","id":"s","method":"getStatus"}"# + "\r"), id: "s")
        try daemon.expectServesOtherConnections()
    }
}
