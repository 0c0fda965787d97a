import Foundation
import TallyClient
import TallyProtocol
import Testing

// Helpers for the catalog / usage / entitlement tests (UsageTests, UsageCrashTests).

extension LiveDaemon {
    /// Provisions a customer no other test uses; returns its id.
    @discardableResult
    func newCustomer(_ prefix: String = "cust") throws -> String {
        let id = uniqueID(prefix)
        _ = try call("provisionCustomer", ["customerId": .string(id), "name": .string("Customer \(id)")])
        return id
    }

    /// Defines a METERED feature (with a meter if given); returns its id.
    @discardableResult
    func newMeteredFeature(_ prefix: String = "feat", meter: JSONValue? = nil) throws -> String {
        let id = uniqueID(prefix)
        var params: JSONObject = ["featureId": .string(id), "type": "METERED", "displayName": .string("Feature \(id)")]
        if let meter { params["meter"] = meter }
        _ = try call("defineFeature", params)
        return id
    }

    /// Defines a plan with the given entitlements and subscribes the customer to it; returns
    /// (planId, subscriptionId).
    @discardableResult
    func subscribe(_ customerId: String, entitlements: [JSONValue], status: String = "ACTIVE") throws -> (planId: String, subscriptionId: String) {
        let planId = uniqueID("plan")
        _ = try call("definePlan", ["planId": .string(planId), "displayName": .string("Plan \(planId)"), "entitlements": .array(entitlements)])
        let subscriptionId = uniqueID("sub")
        _ = try call("provisionSubscription", [
            "customerId": .string(customerId), "planId": .string(planId), "subscriptionId": .string(subscriptionId), "status": .string(status),
        ])
        return (planId, subscriptionId)
    }

    func entitlement(_ customerId: String, _ featureId: String, requested: JSONValue? = nil) throws -> JSONValue {
        var params: JSONObject = ["customerId": .string(customerId), "featureId": .string(featureId)]
        if let requested { params["requestedUsage"] = requested }
        return try call("getEntitlement", params)
    }

    /// getUsageHistory with the customer, feature and start date, plus `extra` params.
    func history(_ customerId: String, _ featureId: String, start: String, _ extra: JSONObject = [:]) throws -> JSONValue {
        var params: JSONObject = ["customerId": .string(customerId), "featureId": .string(featureId), "startDate": .string(start)]
        for (key, value) in extra { params[key] = value }
        return try call("getUsageHistory", params)
    }

    /// Calls `method` expecting -32602 with `data.field == field`, and checks nothing was appended.
    func expectInvalidParams(_ method: String, _ params: JSONObject, field: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let before = try lastSequence()
        let error = expectRPCError(code: -32602, sourceLocation: sourceLocation) { _ = try call(method, params) }
        #expect(error?.field == field, "\(method) \(JSONValue.object(params).jsonText.prefix(300)): expected data.field \(field), got \(error.map { "\($0)" } ?? "no error")", sourceLocation: sourceLocation)
        #expect(try lastSequence() == before, "\(method) rejected with -32602 must append nothing", sourceLocation: sourceLocation)
    }

    /// Calls `method` expecting a domain error, and checks nothing was appended.
    func expectRejected(_ method: String, _ params: JSONObject, code: Int, reason: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let before = try lastSequence()
        expectRPCError(code: code, reason: reason, sourceLocation: sourceLocation) { _ = try call(method, params) }
        #expect(try lastSequence() == before, "\(method) rejected with \(code) must append nothing", sourceLocation: sourceLocation)
    }

    /// verifyLedger: the hash chain holds and a rebuild of every projection equals what is stored.
    @discardableResult
    func expectLedgerConsistent(sourceLocation: SourceLocation = #_sourceLocation) throws -> JSONValue {
        let report = try call("verifyLedger")
        #expect(report["hashChainValid"] == true, "verifyLedger: \(report.jsonText.prefix(2000))", sourceLocation: sourceLocation)
        #expect(report["projectionsMatch"] == true, "verifyLedger: \(report.jsonText.prefix(2000))", sourceLocation: sourceLocation)
        #expect(report["mismatches"]?.arrayValue?.isEmpty ?? true, "verifyLedger: \(report.jsonText.prefix(2000))", sourceLocation: sourceLocation)
        return report
    }

    /// The events appended after `sequence` (at most 1000).
    func events(after sequence: Int) throws -> [JSONValue] {
        try call("readLedger", ["after": .integer(sequence), "limit": 1000])["events"]?.arrayValue ?? []
    }
}

/// A raw event for reportEvent.
func usageEvent(_ customerId: String, _ eventName: String, key: String, dimensions: [String: String] = [:], timestamp: String? = nil, resourceId: String? = nil) -> JSONValue {
    var o: JSONObject = ["customerId": .string(customerId), "eventName": .string(eventName), "idempotencyKey": .string(key)]
    if !dimensions.isEmpty {
        o["dimensions"] = .object(JSONObject(dimensions.sorted { $0.key < $1.key }.map { ($0.key, JSONValue.string($0.value)) }))
    }
    if let timestamp { o["timestamp"] = .string(timestamp) }
    if let resourceId { o["resourceId"] = .string(resourceId) }
    return .object(o)
}

extension JSONValue {
    /// An integer field (JSON number) as Int.
    var intValue: Int? { numberText.flatMap { Int($0) } }
}

/// The UTC calendar month containing `date`: its first instant and the next month's first instant,
/// in Tally's result format (`2026-11-01T00:00:00.000Z`).
func utcMonthBounds(containing date: Date = Date()) -> (start: String, end: String) {
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = TimeZone(identifier: "UTC")!
    let parts = calendar.dateComponents([.year, .month], from: date)
    let start = calendar.date(from: parts)!
    let end = calendar.date(byAdding: .month, value: 1, to: start)!
    let formatter = DateFormatter()
    formatter.locale = Locale(identifier: "en_US_POSIX")
    formatter.timeZone = TimeZone(identifier: "UTC")
    formatter.dateFormat = "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"
    return (formatter.string(from: start), formatter.string(from: end))
}

// MARK: - JSON Schema validation with a real validator (Python jsonschema)

enum SchemaValidator {
    /// Where the seeds are: TALLY_SEEDS_DIR, else ../shared/seeds beside the repository (where CI
    /// puts shared/), else the workspace copy.
    static var seedsDirectory: String {
        if let dir = ProcessInfo.processInfo.environment["TALLY_SEEDS_DIR"] { return dir }
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let beside = repository.deletingLastPathComponent().appendingPathComponent("shared/seeds").path
        return FileManager.default.fileExists(atPath: beside) ? beside : "/work/shared/seeds"
    }

    /// The JSON Schema embedded in a seed page: the balanced `{…}` after the last "JSON Schema" heading.
    static func schema(fromSeed path: String) throws -> String {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        guard let heading = text.range(of: "\nJSON Schema", options: .backwards),
              let open = text[heading.upperBound...].firstIndex(of: "{")
        else { throw LiveTestError("no JSON Schema in \(path)") }
        var depth = 0
        var inString = false
        var escaped = false
        var index = open
        while index < text.endIndex {
            let c = text[index]
            if inString {
                if escaped { escaped = false } else if c == "\\" { escaped = true } else if c == "\"" { inString = false }
            } else if c == "\"" {
                inString = true
            } else if c == "{" {
                depth += 1
            } else if c == "}" {
                depth -= 1
                if depth == 0 { return String(text[open...index]) }
            }
            index = text.index(after: index)
        }
        throw LiveTestError("unbalanced JSON Schema in \(path)")
    }

    /// python3 with `jsonschema` importable: the one on the PATH, else Debian's, else the one on
    /// the PATH after a pip install.
    static func python() throws -> String {
        guard let python = findExecutable("python3") else { throw LiveTestError("python3 is not installed: the JSON Schema check needs it") }
        for candidate in [python, "/usr/bin/python3"] where FileManager.default.isExecutableFile(atPath: candidate) {
            if try runProgram(candidate, ["-c", "import jsonschema"]).status == 0 { return candidate }
        }
        let install = try runProgram(python, ["-m", "pip", "install", "--quiet", "jsonschema"], timeoutSeconds: 120)
        guard install.status == 0 else { throw LiveTestError("pip install jsonschema failed: \(install.stderr)") }
        return python
    }

    /// Validates each instance (one JSON document per line of the instances file); prints one
    /// line per instance, "VALID" or "INVALID: <reason>". Exit 0 when the check ran (whatever the
    /// verdicts), 3 when this jsonschema cannot check date-time formats.
    static let script = """
        import json, sys
        import jsonschema
        schema = json.load(open(sys.argv[1]))
        checker = jsonschema.FormatChecker()
        if "date-time" not in checker.checkers:
            print("this jsonschema cannot check format date-time", file=sys.stderr)
            sys.exit(3)
        jsonschema.validators.validator_for(schema).check_schema(schema)
        for line in open(sys.argv[2]):
            instance = json.loads(line)
            try:
                jsonschema.validate(instance=instance, schema=schema, format_checker=checker)
                print("VALID")
            except jsonschema.ValidationError as e:
                print("INVALID: " + e.message.replace("\\n", " "))
        """

    /// Validates every instance against `schema` (JSON text) in one run of python's jsonschema;
    /// returns one verdict per instance: nil = valid, else the validator's reason.
    static func validate(schema: String, instances: [JSONValue], in directory: TemporaryDirectory) throws -> [String?] {
        let python = try python()
        let name = UUID().uuidString.prefix(8)
        let schemaPath = try writeFile(schema, named: "schema-\(name).json", in: directory)
        let instancesPath = try writeFile(instances.map(\.jsonText).joined(separator: "\n") + "\n", named: "instances-\(name).jsonl", in: directory)
        let scriptPath = try writeFile(script, named: "validate-\(name).py", in: directory)
        let run = try runProgram(python, [scriptPath, schemaPath, instancesPath])
        guard run.status == 0 else { throw LiveTestError("the jsonschema check failed to run (\(run.status)): \(run.stderr)") }
        let lines = run.stdout.split(separator: "\n").map(String.init)
        guard lines.count == instances.count else { throw LiveTestError("jsonschema answered \(lines.count) verdicts for \(instances.count) instances: \(run.stdout)") }
        return lines.map { $0 == "VALID" ? nil : $0 }
    }
}
