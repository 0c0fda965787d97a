import Testing
import TallyProtocol

/// Parses JSON text (so number texts such as `12.50` stay exactly as written).
private func json(_ text: String) -> JSONValue {
    do {
        return try JSONParser.parse(text)
    } catch {
        Issue.record("bad test JSON: \(error)")
        return .null
    }
}

/// The record with `key` set to `value` (nil removes it).
private func with(_ record: JSONValue, _ key: String, _ value: JSONValue?) -> JSONValue {
    guard case .object(var o) = record else { return record }
    o[key] = value
    return .object(o)
}

/// The `data.field` of the -32602 error the conversion throws, or nil if it succeeds.
private func rejectedField(_ record: JSONValue, _ format: ImportFormat, index: Int = 0) -> String? {
    do {
        _ = try ImportFormats.convert(record, format: format, index: index)
        return nil
    } catch {
        #expect(error.code == RPCFailure.invalidParamsCode)
        return error.data?["field"]?.stringValue ?? "<no field>"
    }
}

private func convert(_ record: JSONValue, _ format: ImportFormat, index: Int = 0) -> [ImportedRecord] {
    do {
        return try ImportFormats.convert(record, format: format, index: index)
    } catch {
        Issue.record("unexpected rejection: \(error.message)")
        return []
    }
}

@Suite("importRecords format adapters")
struct ImportFormatsTests {
    @Test func formatNames() {
        #expect(ImportFormat.allCases.map(\.rawValue) == ["STIGG", "OCTANE", "PAIGO", "CLOUDEVENTS"])
        #expect(ImportFormat(rawValue: "PAIGO") == .paigo)
    }

    @Test func nonObjectRecordIsRejected() {
        for format in ImportFormat.allCases {
            #expect(rejectedField(json("[1]"), format, index: 4) == "records[4]")
            #expect(rejectedField(json("\"x\""), format, index: 0) == "records[0]")
        }
    }

    // MARK: - STIGG

    static let stigg = json(
        #"{"id":"m-1","customerId":"cust-1","featureId":"feature-api-calls","value":12.50,"timestamp":"2026-11-20T10:00:00Z"}"#)

    @Test func stiggMinimal() {
        let out = convert(Self.stigg, .stigg)
        let expected: JSONObject = [
            "customerId": "cust-1", "featureId": "feature-api-calls", "value": .number("12.50"),
            "idempotencyKey": "m-1", "timestamp": "2026-11-20T10:00:00Z",
        ]
        #expect(out == [.usage(expected)])
        // The number text is kept exactly (not "12.5").
        if case .usage(let p) = out.first { #expect(p["value"] == .number("12.50")) }
    }

    @Test func stiggFull() {
        let record = json(
            #"""
            {"id":"m-2","customerId":"c","featureId":"f","value":-3e2,"updateBehavior":"SET",
             "idempotencyKey":"key-9","timestamp":"2026-11-20T10:00:00.123+02:00",
             "createdAt":"2026-11-20T10:00:01Z","resourceId":"res-1","dimensions":{"region":"eu","tier":"gold"}}
            """#)
        let expected: JSONObject = [
            "customerId": "c", "featureId": "f", "value": .number("-3e2"), "updateBehavior": "SET",
            "resourceId": "res-1", "idempotencyKey": "key-9", "timestamp": "2026-11-20T10:00:00.123+02:00",
            "dimensions": ["region": "eu", "tier": "gold"],
        ]
        #expect(convert(record, .stigg) == [.usage(expected)])
    }

    @Test func stiggNullIdempotencyKeyFallsBackToId() {
        let out = convert(with(Self.stigg, "idempotencyKey", .null), .stigg)
        guard case .usage(let p)? = out.first else { Issue.record("no usage"); return }
        #expect(p["idempotencyKey"] == "m-1")
        #expect(p["updateBehavior"] == nil)
        let delta = convert(with(Self.stigg, "updateBehavior", "DELTA"), .stigg)
        guard case .usage(let q)? = delta.first else { Issue.record("no usage"); return }
        #expect(q["updateBehavior"] == "DELTA")
    }

    @Test func stiggRequiredFields() {
        for key in ["id", "customerId", "featureId", "value", "timestamp"] {
            #expect(rejectedField(with(Self.stigg, key, nil), .stigg, index: 3) == "records[3].\(key)")
        }
    }

    @Test func stiggWrongTypes() {
        let cases: [(String, JSONValue)] = [
            ("id", 7), ("customerId", true), ("featureId", .null), ("value", "12.5"), ("value", .null),
            ("updateBehavior", "INCREMENT"), ("updateBehavior", .null), ("updateBehavior", 1),
            ("idempotencyKey", 5), ("idempotencyKey", ""), ("timestamp", 1_700_000_000),
            ("timestamp", "2026-11-20T10:00:00"), ("timestamp", "26-11-20T10:00:00Z"), ("createdAt", "yesterday"),
            ("createdAt", .null), ("resourceId", 1), ("dimensions", "region=eu"), ("customerId", ""),
        ]
        for (key, value) in cases {
            #expect(rejectedField(with(Self.stigg, key, value), .stigg, index: 1) == "records[1].\(key)", "\(key): \(value)")
        }
        #expect(rejectedField(with(Self.stigg, "dimensions", ["n": [1]]), .stigg) == "records[0].dimensions.n")
        #expect(rejectedField(with(Self.stigg, "dimensions", ["n": .null]), .stigg) == "records[0].dimensions.n")
        #expect(rejectedField(with(Self.stigg, "dimensions", ["bad key": "x"]), .stigg) == "records[0].dimensions.bad key")
        #expect(rejectedField(with(Self.stigg, "dimensions", ["k": ""]), .stigg) == "records[0].dimensions.k")
        // Out-of-precision values are rejected, never rounded.
        #expect(rejectedField(json(#"{"id":"m","customerId":"c","featureId":"f","value":0.0000000000001,"timestamp":"2026-11-20T10:00:00Z"}"#), .stigg) == "records[0].value")
    }

    @Test func stiggNullExtensionsAreAbsent() {
        let out = convert(with(with(Self.stigg, "resourceId", .null), "dimensions", .null), .stigg)
        guard case .usage(let p)? = out.first else { Issue.record("no usage"); return }
        #expect(p["resourceId"] == nil)
        #expect(p["dimensions"] == nil)
    }

    @Test("STIGG: fields the schema does not name are allowed (no additionalProperties: false) and ignored")
    func stiggUnknownFieldsAreIgnored() {
        let plain = convert(Self.stigg, .stigg)
        #expect(!plain.isEmpty)
        // Any extra field, and the fields of the measurement Tally itself returns.
        var extended = with(with(Self.stigg, "source", "gateway"), "delta", 5)
        extended = with(with(extended, "currentUsage", "12"), "usagePeriodEnd", "2026-12-01T00:00:00.000Z")
        #expect(convert(extended, .stigg) == plain)
    }

    // MARK: - OCTANE

    static let octane = json(
        #"""
        {"id":"evt-1","meter_name":"storage_gb","customer_name":"acme","event_name":"upload","value":1.25,
         "time":"2026-11-20T10:00:00Z","labels":{"region":"us-east-1"}}
        """#)

    @Test func octaneFull() {
        let expected: JSONObject = [
            "customerId": "acme", "featureId": "storage_gb", "value": .number("1.25"), "idempotencyKey": "evt-1",
            "timestamp": "2026-11-20T10:00:00Z", "dimensions": ["region": "us-east-1", "event_name": "upload"],
        ]
        #expect(convert(Self.octane, .octane) == [.usage(expected)])
    }

    @Test func octaneMinimal() {
        let record = json(#"{"meter_name":"m","customer_name":"c","value":3}"#)
        #expect(convert(record, .octane) == [.usage(["customerId": "c", "featureId": "m", "value": .number("3")])])
        // reset_total false is the same as absent.
        #expect(convert(with(record, "reset_total", false), .octane) == [.usage(["customerId": "c", "featureId": "m", "value": .number("3")])])
    }

    @Test func octaneResetTotalEmitsResetThenUsage() {
        let out = convert(with(Self.octane, "reset_total", true), .octane)
        #expect(out.count == 2)
        #expect(out.first == .reset(customerId: "acme", featureId: "storage_gb", resourceId: nil, timestamp: "2026-11-20T10:00:00Z"))
        guard case .usage(let p)? = out.last else { Issue.record("no usage after reset"); return }
        #expect(p["value"] == .number("1.25"))
        let noTime = convert(json(#"{"meter_name":"m","customer_name":"c","value":0,"reset_total":true}"#), .octane)
        #expect(noTime == [
            .reset(customerId: "c", featureId: "m", resourceId: nil, timestamp: nil),
            .usage(["customerId": "c", "featureId": "m", "value": .number("0")]),
        ])
    }

    @Test func octaneRequiredFields() {
        for key in ["value", "meter_name", "customer_name"] {
            #expect(rejectedField(with(Self.octane, key, nil), .octane, index: 7) == "records[7].\(key)")
        }
    }

    @Test func octaneWrongTypes() {
        let cases: [(String, JSONValue)] = [
            ("value", "1.25"), ("value", .null), ("meter_name", 1), ("customer_name", ["a"]), ("id", 9), ("id", .null),
            ("event_name", false), ("time", "2026-11-20"), ("time", 0), ("labels", ["a", "b"]), ("labels", .null),
            ("reset_total", "true"), ("reset_total", .null), ("meter_name", ""),
        ]
        for (key, value) in cases {
            #expect(rejectedField(with(Self.octane, key, value), .octane) == "records[0].\(key)", "\(key): \(value)")
        }
        #expect(rejectedField(with(Self.octane, "labels", ["zone": 3]), .octane) == "records[0].labels.zone")
        // A label named event_name must agree with event_name.
        #expect(rejectedField(with(Self.octane, "labels", ["event_name": "other"]), .octane) == "records[0].labels.event_name")
        #expect(rejectedField(with(Self.octane, "labels", ["event_name": "upload"]), .octane) == nil)
    }

    @Test func octaneAdditionalPropertiesRejected() {
        #expect(rejectedField(with(Self.octane, "customerId", "acme"), .octane, index: 5) == "records[5].customerId")
        #expect(rejectedField(with(Self.octane, "resource_id", "r"), .octane) == "records[0].resource_id")
    }

    // MARK: - PAIGO

    static let paigo = json(
        #"""
        {"timestamp":"2021-01-23T01:23:45Z","customerId":"e8366954-6f36-47e9-8431-ac95f88b5cc7",
         "dimensionId":"api-calls","recordValue":"12.000000000001",
         "metadata":{"environment":"staging","purpose":"proof-of-concept","owner":"John Doe"}}
        """#)

    @Test func paigoFullKeepsRecordValueExact() {
        let expected: JSONObject = [
            "customerId": "e8366954-6f36-47e9-8431-ac95f88b5cc7", "featureId": "api-calls", "value": "12.000000000001",
            "timestamp": "2021-01-23T01:23:45Z",
            "dimensions": ["environment": "staging", "purpose": "proof-of-concept", "owner": "John Doe"],
        ]
        let out = convert(Self.paigo, .paigo)
        #expect(out == [.usage(expected)])
        guard case .usage(let p)? = out.first else { return }
        #expect(p["value"] == .string("12.000000000001"))
        #expect(p["idempotencyKey"] == nil)
    }

    @Test func paigoIdempotencyKeyExtensionAndNullMetadata() {
        let record = with(with(Self.paigo, "idempotencyKey", "paigo-77"), "metadata", .null)
        let expected: JSONObject = [
            "customerId": "e8366954-6f36-47e9-8431-ac95f88b5cc7", "featureId": "api-calls", "value": "12.000000000001",
            "idempotencyKey": "paigo-77", "timestamp": "2021-01-23T01:23:45Z",
        ]
        #expect(convert(record, .paigo) == [.usage(expected)])
    }

    @Test func paigoRequiredFields() {
        for key in ["timestamp", "customerId", "dimensionId", "recordValue"] {
            #expect(rejectedField(with(Self.paigo, key, nil), .paigo, index: 9) == "records[9].\(key)")
        }
    }

    @Test func paigoRecordValueMustBeADecimalString() {
        #expect(rejectedField(with(Self.paigo, "recordValue", .number("12.5")), .paigo, index: 3) == "records[3].recordValue")
        for bad in ["", "abc", "12,5", " 1", "1.", ".5", "+1", "NaN", "0.0000000000001"] {
            #expect(rejectedField(with(Self.paigo, "recordValue", .string(bad)), .paigo) == "records[0].recordValue", "\(bad)")
        }
        for good in ["0", "-3", "12.5", "100.000000000000"] {
            #expect(rejectedField(with(Self.paigo, "recordValue", .string(good)), .paigo) == nil, "\(good)")
        }
    }

    @Test func paigoTimestampNeedsFourDigitYearAndZone() {
        for bad in ["21-01-23T01:23:45Z", "02021-01-23T01:23:45Z", "2021-01-23T01:23:45", "2021-01-23", "2021-01-23 01:23:45Z"] {
            #expect(rejectedField(with(Self.paigo, "timestamp", .string(bad)), .paigo) == "records[0].timestamp", "\(bad)")
        }
        #expect(rejectedField(with(Self.paigo, "timestamp", "2021-01-23T01:23:45.5-05:00"), .paigo) == nil)
    }

    @Test("STIGG dimensions and PAIGO metadata take numbers and booleans as their JSON text, as reportUsage's dimensions do (found in review)")
    func numbersAndBooleansInDimensionsAreTheirText() {
        let stigg = convert(with(Self.stigg, "dimensions", json(#"{"contract":12345,"ratio":1.50,"billable":true}"#)), .stigg)
        guard case .usage(let s)? = stigg.first else { return }
        #expect(s["dimensions"] == .object(["contract": "12345", "ratio": "1.50", "billable": "true"]))
        let paigo = convert(with(Self.paigo, "metadata", json(#"{"contract":42,"trial":false}"#)), .paigo)
        guard case .usage(let p)? = paigo.first else { return }
        #expect(p["dimensions"] == .object(["contract": "42", "trial": "false"]))
        // Octane's labels stay strings only: its schema says additionalProperties {type: string}.
        #expect(rejectedField(with(Self.octane, "labels", ["n": 1]), .octane) == "records[0].labels.n")
    }

    @Test func paigoWrongTypesAndUnknownFields() {
        let cases: [(String, JSONValue)] = [
            ("timestamp", 1), ("customerId", 1), ("dimensionId", .null), ("metadata", "x"), ("metadata", ["a"]),
            ("idempotencyKey", 3), ("dimensionId", ""),
        ]
        for (key, value) in cases {
            #expect(rejectedField(with(Self.paigo, key, value), .paigo) == "records[0].\(key)", "\(key): \(value)")
        }
        #expect(rejectedField(with(Self.paigo, "metadata", ["nested": ["a": "b"]]), .paigo) == "records[0].metadata.nested")
        #expect(rejectedField(with(Self.paigo, "recordId", "r1"), .paigo) == "records[0].recordId")
    }

    // MARK: - CLOUDEVENTS

    static let cloudEvent = json(
        #"""
        {"specversion":"1.0","id":"A234-1234-1234","source":"/api/gateway","type":"api.call",
         "subject":"cust-1","time":"2026-11-20T10:00:00Z","datacontenttype":"application/json",
         "data":{"endpoint":"/v1/x","bytes":2048,"cached":false,"resourceId":"proj-1","skipped":null}}
        """#)

    @Test func cloudEventFull() {
        let expected: JSONObject = [
            "customerId": "cust-1", "eventName": "api.call", "idempotencyKey": "/api/gateway/A234-1234-1234",
            "resourceId": "proj-1", "timestamp": "2026-11-20T10:00:00Z",
            "dimensions": ["endpoint": "/v1/x", "bytes": "2048", "cached": "false"],
        ]
        #expect(convert(Self.cloudEvent, .cloudEvents) == [.event(expected)])
    }

    @Test func cloudEventMinimalWithCustomerInData() {
        let record = json(#"{"specversion":"1.0","id":"1","source":"urn:tally:test","type":"t","data":{"customerId":"c9"}}"#)
        let expected: JSONObject = ["customerId": "c9", "eventName": "t", "idempotencyKey": "urn:tally:test/1"]
        #expect(convert(record, .cloudEvents) == [.event(expected)])
        // Number texts are kept exactly.
        let n = json(#"{"specversion":"1.0","id":"1","source":"s","type":"t","subject":"c","data":{"tokens":1.50}}"#)
        guard case .event(let e)? = convert(n, .cloudEvents).first else { Issue.record("no event"); return }
        #expect(e["dimensions"] == ["tokens": "1.50"])
    }

    @Test func cloudEventSameIdFromDifferentSourcesDiffers() {
        let a = convert(with(Self.cloudEvent, "source", "/a"), .cloudEvents)
        let b = convert(with(Self.cloudEvent, "source", "/b"), .cloudEvents)
        guard case .event(let ea)? = a.first, case .event(let eb)? = b.first else { Issue.record("no events"); return }
        #expect(ea["idempotencyKey"] == "/a/A234-1234-1234")
        #expect(eb["idempotencyKey"] == "/b/A234-1234-1234")
    }

    @Test func cloudEventRequiredFields() {
        for key in ["specversion", "id", "source", "type"] {
            #expect(rejectedField(with(Self.cloudEvent, key, nil), .cloudEvents, index: 6) == "records[6].\(key)")
        }
        // No subject and no data.customerId: the customer is missing.
        #expect(rejectedField(with(Self.cloudEvent, "subject", nil), .cloudEvents) == "records[0].subject")
        #expect(rejectedField(with(Self.cloudEvent, "subject", .null), .cloudEvents) == "records[0].subject")
    }

    @Test func cloudEventWrongTypes() {
        let cases: [(String, JSONValue)] = [
            ("specversion", "0.3"), ("specversion", 1), ("id", 5), ("id", ""), ("source", ""), ("source", true),
            ("type", ""), ("type", 2), ("subject", 5), ("subject", ""), ("time", "now"), ("time", 5),
            ("data", "text"), ("data", [1, 2]), ("datacontenttype", "text/plain"), ("datacontenttype", 1),
            ("data_base64", "AAAA"), ("Foo", "x"), ("my_ext", "x"), ("traceparent", ["a": "b"]),
            // As CloudEvents 1.0 says: source a URI-reference, dataschema an absolute URI, no
            // fractional (or beyond 32-bit) extension values.
            ("source", "a b c"), ("source", "/x\u{7F}"), ("source", "/bad%zz"), ("dataschema", ""), ("dataschema", "/relative"),
            ("dataschema", "not a uri"), ("traceparent", .number("1.5")), ("partitionkey", 3_000_000_000),
            // Not URI-references: brackets outside an IP-literal host, a relative reference whose
            // first segment holds a ':', two '#'.
            ("source", "a[b"), ("source", "::"), ("source", "/x#a#b"), ("source", "//h[ost]/p"), ("source", "/p?q=[1]"),
            // CloudEvents Strings hold no control characters or noncharacters.
            ("id", "a\nb"), ("id", "a\u{1}"), ("id", "a\u{FFFE}"), ("type", "api\tcall"), ("subject", "c\u{85}"),
            ("traceparent", "00-\n"),
        ]
        for (key, value) in cases {
            #expect(rejectedField(with(Self.cloudEvent, key, value), .cloudEvents) == "records[0].\(key)", "\(key): \(value)")
        }
        let dataCases: [(String, JSONValue)] = [
            ("nested", ["a": "b"]), ("list", [1]), ("customerId", 1), ("resourceId", 2), ("resourceId", ""),
            ("customerId", "someone-else"), ("bad key", "x"), ("empty", ""),
        ]
        for (key, value) in dataCases {
            var data = Self.cloudEvent["data"]?.objectValue ?? [:]
            data[key] = value
            #expect(
                rejectedField(with(Self.cloudEvent, "data", .object(data)), .cloudEvents) == "records[0].data.\(key)",
                "data.\(key): \(value)")
        }
    }

    @Test("CloudEvents: URI-references the RFC allows are accepted as source")
    func cloudEventSourcesThatAreURIReferences() {
        for source in ["/api/gateway", "https://example.com/a?b=c#d", "urn:example:gw", "//[::1]:8080/x", "//user@[2001:db8::1]/p", "a/b:c", "?q", "#f", "mailto:ops@example.com"] {
            #expect(rejectedField(with(Self.cloudEvent, "source", .string(source)), .cloudEvents) == nil, "\(source)")
        }
    }

    @Test func cloudEventMediaTypeWithoutData() {
        let noData = with(Self.cloudEvent, "data", nil)
        for bad: JSONValue in ["", "json", "text/", "a b/c"] {
            #expect(rejectedField(with(with(noData, "subject", "c"), "datacontenttype", bad), .cloudEvents) == "records[0].datacontenttype", "\(bad)")
        }
        #expect(rejectedField(with(with(noData, "subject", "c"), "datacontenttype", "text/plain"), .cloudEvents) == nil)
    }

    @Test func cloudEventExtensionsAndOptionalAttributes() {
        var record = with(Self.cloudEvent, "traceparent", "00-abc-01")
        record = with(record, "partitionkey2", 7)
        record = with(record, "sampled", true)
        record = with(record, "attempt", .number("2.0"))  // an Integer, as JSON Schema counts it
        record = with(record, "dataschema", "https://example.com/schema")
        record = with(record, "datacontenttype", "application/cloudevents+json; charset=utf-8")
        #expect(rejectedField(record, .cloudEvents) == nil)
        // Null optional attributes are absent; subject equal to data.customerId is fine.
        var data = Self.cloudEvent["data"]?.objectValue ?? [:]
        data["resourceId"] = .null  // null members are absent, customerId and resourceId too
        var withNullCustomer = data
        withNullCustomer["customerId"] = .null
        #expect(rejectedField(with(Self.cloudEvent, "data", .object(withNullCustomer)), .cloudEvents) == nil)
        data["customerId"] = "cust-1"
        let same = with(with(Self.cloudEvent, "data", .object(data)), "time", .null)
        guard case .event(let e)? = convert(same, .cloudEvents).first else { Issue.record("no event"); return }
        #expect(e["customerId"] == "cust-1")
        #expect(e["timestamp"] == nil)
        #expect(e["dimensions"]?["customerId"] == nil)
        // Without data, any datacontenttype is fine.
        let noData = with(with(Self.cloudEvent, "data", nil), "datacontenttype", "text/plain")
        #expect(convert(noData, .cloudEvents) == [
            .event(["customerId": "cust-1", "eventName": "api.call", "idempotencyKey": "/api/gateway/A234-1234-1234", "timestamp": "2026-11-20T10:00:00Z"])
        ])
    }

    @Test func cloudEventIdempotencyKeyTooLong() {
        let longSource = String(repeating: "s", count: 250)
        #expect(rejectedField(with(Self.cloudEvent, "source", .string(longSource)), .cloudEvents) == "records[0].id")
    }
}
