import TallyCore

// importRecords format adapters: pure validation + conversion of records taken verbatim in a
// foreign schema into Tally's own reportUsage params / reportEvent events. Nothing here touches
// the ledger; the caller runs the results through the normal reportUsage / reportEvent paths.
//
// Common rules (all formats):
// - A record must be a JSON object; otherwise the error names `records[<index>]`.
// - Every error is -32602 naming `records[<index>].<field>` (nested: `.labels.<key>`,
//   `.metadata.<key>`, `.data.<key>`, `.dimensions.<key>`).
// - Values (amounts) are checked with `Amount(parsing:)` but kept EXACTLY as given: a JSON number
//   stays `.number(<its text>)`, a Paigo decimal string stays `.string(<its text>)`.
// - Timestamps are checked with `Timestamp(parsingRFC3339:)` (4-digit year, time zone required)
//   but kept as the original text.
// - Ids (customerId, featureId, resourceId, idempotencyKey, eventName) follow `Identifier`
//   (non-empty, ≤ 256 bytes). Dimension keys match `^[a-zA-Z0-9_$.-]+$` (≤ 256 bytes) and
//   dimension values are ids too (non-empty, ≤ 256 bytes), as the contract's "Values" says.
// - An empty dimension map is omitted from the output.

/// The foreign record formats `importRecords` accepts.
public enum ImportFormat: String, Sendable, CaseIterable {
    case stigg = "STIGG", octane = "OCTANE", paigo = "PAIGO", cloudEvents = "CLOUDEVENTS"
}

/// What one imported record becomes.
public enum ImportedRecord: Sendable, Equatable {
    /// Params for reportUsage: {customerId, featureId, value (JSON number text or decimal string, kept EXACT as given),
    /// updateBehavior?: "DELTA"|"SET", resourceId?, idempotencyKey?, timestamp?, dimensions?: {string: string}}
    case usage(JSONObject)
    /// Octane reset_total: reset the running total of (customerId, featureId[, resourceId]) at timestamp (nil = now);
    /// comes BEFORE the record's usage.
    case reset(customerId: String, featureId: String, resourceId: String?, timestamp: String?)
    /// One reportEvent event: {customerId, eventName, idempotencyKey, dimensions?: {string: string}, resourceId?, timestamp?}
    case event(JSONObject)
}

public enum ImportFormats {
    /// Records per importRecords call.
    public static let recordsMax = 10_000

    /// Validates one record against its format's schema and converts it. Errors are RPCFailure.invalidParams with
    /// field "records[<index>].<field>" naming the offending field (e.g. "records[3].recordValue").
    ///
    /// Mapping (see docs/protocol.md, importRecords):
    /// - STIGG (UsageMeasurement): required id, customerId, featureId, value (JSON number), timestamp;
    ///   optional updateBehavior (DELTA|SET; passed through only when given, DELTA being the default),
    ///   idempotencyKey (string or null; null/absent → `id`, so re-imports dedupe), createdAt (checked,
    ///   ignored), and the Tally extensions resourceId and dimensions (null = absent). Other fields are
    ///   ignored, as the schema (no additionalProperties: false) allows them. Explicit null is rejected wherever the schema does not allow it.
    /// - OCTANE (Measurement, additionalProperties: false): value (JSON number, required); meter_name →
    ///   featureId and customer_name → customerId (both required by Tally); id → idempotencyKey;
    ///   time → timestamp; labels → dimensions; event_name → the dimension `event_name` (a label of the
    ///   same name must then hold the same value); reset_total true → `.reset` then `.usage`.
    /// - PAIGO: required timestamp, customerId, dimensionId (→ featureId), recordValue (a JSON string
    ///   holding a decimal; a JSON number is rejected); optional metadata (→ dimensions: strings as is, numbers and
    ///   booleans as their JSON text; null = absent) and the Tally extension idempotencyKey (null = absent). No key otherwise.
    /// - CLOUDEVENTS (1.0, JSON format): required specversion "1.0", id, source (a URI-reference),
    ///   type; optional time, subject (non-empty), datacontenttype (a media type; a JSON one when data
    ///   is present), dataschema (an absolute URI; ignored), data (an object). Extension attributes
    ///   (`^[a-z0-9]+$` names; string, boolean or 32-bit integer values) are ignored;
    ///   data_base64 and any other name are rejected. Null optional attributes = absent.
    ///   eventName = type; customerId = subject, else data.customerId (else rejected naming `subject`);
    ///   idempotencyKey = source + "/" + id (ids are only unique per source); timestamp = time;
    ///   resourceId = data.resourceId; dimensions = the other data members (strings as is, numbers as
    ///   their JSON text, booleans "true"/"false", nulls skipped, objects/arrays rejected).
    public static func convert(_ record: JSONValue, format: ImportFormat, index: Int) throws(RPCFailure) -> [ImportedRecord] {
        let path = "records[\(index)]"
        guard case .object(let object) = record else {
            throw .invalidParams(field: path, "must be an object, not \(record.typeName)")
        }
        var reader = RecordReader(object: object, path: path)
        switch format {
        case .stigg: return try convertStigg(&reader)
        case .octane: return try convertOctane(&reader)
        case .paigo: return try convertPaigo(&reader)
        case .cloudEvents: return try convertCloudEvent(&reader)
        }
    }

    // MARK: - STIGG

    private static func convertStigg(_ r: inout RecordReader) throws(RPCFailure) -> [ImportedRecord] {
        let id = try r.requiredID("id")
        let customerId = try r.requiredID("customerId")
        let featureId = try r.requiredID("featureId")
        let value = try r.requiredNumber("value")
        var updateBehavior: String?
        if let behavior = try r.string("updateBehavior", nullIsAbsent: false) {
            guard behavior == "DELTA" || behavior == "SET" else {
                throw .invalidParams(field: r.field("updateBehavior"), "must be \"DELTA\" or \"SET\"")
            }
            updateBehavior = behavior
        }
        let idempotencyKey = try r.id("idempotencyKey", nullIsAbsent: true) ?? id
        let timestamp = try r.requiredTimestamp("timestamp")
        _ = try r.timestamp("createdAt", nullIsAbsent: false)
        let resourceId = try r.id("resourceId", nullIsAbsent: true)
        let dimensions = try r.stringMap("dimensions", nullIsAbsent: true, scalars: true)

        var params: JSONObject = ["customerId": .string(customerId), "featureId": .string(featureId), "value": value]
        if let updateBehavior { params["updateBehavior"] = .string(updateBehavior) }
        if let resourceId { params["resourceId"] = .string(resourceId) }
        params["idempotencyKey"] = .string(idempotencyKey)
        params["timestamp"] = .string(timestamp)
        if !dimensions.isEmpty { params["dimensions"] = .object(dimensions) }
        return [.usage(params)]
    }

    // MARK: - OCTANE

    static let octaneFields: Set<String> = [
        "id", "meter_name", "customer_name", "event_name", "value", "time", "labels", "reset_total",
    ]

    private static func convertOctane(_ r: inout RecordReader) throws(RPCFailure) -> [ImportedRecord] {
        try r.rejectUnknown(allowed: octaneFields, what: "is not a Measurement field (additionalProperties: false)")
        let value = try r.requiredNumber("value")
        // Tally needs both to attribute the usage, although Octane's schema leaves them optional.
        let featureId = try r.requiredID("meter_name")
        let customerId = try r.requiredID("customer_name")
        let id = try r.id("id", nullIsAbsent: false)
        let eventName = try r.string("event_name", nullIsAbsent: false)
        let time = try r.timestamp("time", nullIsAbsent: false)
        var dimensions = try r.stringMap("labels", nullIsAbsent: false)
        let resetTotal = try r.bool("reset_total", nullIsAbsent: false) ?? false

        if let eventName {
            let field = r.field("event_name")
            if let problem = Identifier.problem(with: eventName) { throw .invalidParams(field: field, problem) }
            if let label = dimensions["event_name"], label != .string(eventName) {
                throw .invalidParams(field: r.field("labels.event_name"), "conflicts with event_name (kept as the dimension \"event_name\")")
            }
            dimensions["event_name"] = .string(eventName)
            guard dimensions.count <= UsageMethods.dimensionsMax else {
                throw .invalidParams(field: r.field("labels"), "may hold at most \(UsageMethods.dimensionsMax - 1) keys with event_name (which becomes a dimension too)")
            }
        }

        var params: JSONObject = ["customerId": .string(customerId), "featureId": .string(featureId), "value": value]
        if let id { params["idempotencyKey"] = .string(id) }
        if let time { params["timestamp"] = .string(time) }
        if !dimensions.isEmpty { params["dimensions"] = .object(dimensions) }
        var out: [ImportedRecord] = []
        if resetTotal {
            out.append(.reset(customerId: customerId, featureId: featureId, resourceId: nil, timestamp: time))
        }
        out.append(.usage(params))
        return out
    }

    // MARK: - PAIGO

    static let paigoFields: Set<String> = [
        "timestamp", "customerId", "dimensionId", "recordValue", "metadata",
        // Tally extension.
        "idempotencyKey",
    ]

    private static func convertPaigo(_ r: inout RecordReader) throws(RPCFailure) -> [ImportedRecord] {
        try r.rejectUnknown(allowed: paigoFields, what: "is not a Paigo usage record field")
        let timestamp = try r.requiredTimestamp("timestamp")
        let customerId = try r.requiredID("customerId")
        let featureId = try r.requiredID("dimensionId")
        let recordField = r.field("recordValue")
        let recordValue: String
        switch r.object["recordValue"] {
        case nil, .null?:
            throw .invalidParams(field: recordField, "is required")
        case .string(let text)?:
            do {
                _ = try Amount(parsing: text)
            } catch {
                throw .invalidParams(field: recordField, "must be a decimal number in a string: \(error.description)")
            }
            recordValue = text
        case let other?:
            throw .invalidParams(
                field: recordField, "must be a string holding a decimal number (Paigo sends values as strings), not \(other.typeName)")
        }
        let dimensions = try r.stringMap("metadata", nullIsAbsent: true, scalars: true)
        let idempotencyKey = try r.id("idempotencyKey", nullIsAbsent: true)

        var params: JSONObject = ["customerId": .string(customerId), "featureId": .string(featureId), "value": .string(recordValue)]
        if let idempotencyKey { params["idempotencyKey"] = .string(idempotencyKey) }
        params["timestamp"] = .string(timestamp)
        if !dimensions.isEmpty { params["dimensions"] = .object(dimensions) }
        return [.usage(params)]
    }

    // MARK: - CLOUDEVENTS

    static let cloudEventsKnown: Set<String> = [
        "specversion", "id", "source", "type", "datacontenttype", "dataschema", "subject", "time", "data",
    ]

    private static func convertCloudEvent(_ r: inout RecordReader) throws(RPCFailure) -> [ImportedRecord] {
        // Attribute names first: core attributes, data, or extensions (lowercase a-z, 0-9 only).
        for (key, value) in r.object where !cloudEventsKnown.contains(key) {
            if key == "data_base64" {
                throw .invalidParams(field: r.field(key), "is not supported: data must be a JSON object")
            }
            guard isCloudEventsAttributeName(key) else {
                throw .invalidParams(field: r.field(key), "is not a CloudEvents attribute (names are lowercase a-z and 0-9)")
            }
            switch value {
            case .object, .array:
                throw .invalidParams(field: r.field(key), "must be a string, integer or boolean, not \(value.typeName)")
            case .number(let text):
                // CloudEvents has no fractional type: an Integer is a 32-bit signed whole number
                // (`1.0` and `1e0` are one too, as JSON Schema counts them).
                guard Params.integer(text).flatMap(Int32.init(exactly:)) != nil else { throw .invalidParams(field: r.field(key), "must be a string, boolean or 32-bit integer (CloudEvents has no fractional numbers)") }
            case .string(let text):
                if let problem = cloudEventsStringProblem(text) { throw .invalidParams(field: r.field(key), problem) }
            default:
                break  // An extension attribute: allowed and ignored.
            }
        }

        let specversion = try r.requiredString("specversion")
        guard specversion == "1.0" else {
            throw .invalidParams(field: r.field("specversion"), "must be \"1.0\"")
        }
        let id = try r.requiredString("id")
        guard !id.isEmpty else { throw .invalidParams(field: r.field("id"), "must not be empty") }
        if let problem = cloudEventsStringProblem(id) { throw .invalidParams(field: r.field("id"), problem) }
        let source = try r.requiredString("source")
        guard !source.isEmpty else { throw .invalidParams(field: r.field("source"), "must not be empty") }
        guard isURIReference(source) else { throw .invalidParams(field: r.field("source"), "must be a URI-reference (RFC 3986: no spaces; other characters %-escaped; brackets only around an IP-literal host; a ':' before the first '/' only after a scheme)") }
        let eventName = try r.requiredID("type")
        if let problem = cloudEventsStringProblem(eventName) { throw .invalidParams(field: r.field("type"), problem) }
        let subject = try r.string("subject", nullIsAbsent: true)
        if subject == "" { throw .invalidParams(field: r.field("subject"), "must not be empty when present") }
        if let subject, let problem = cloudEventsStringProblem(subject) { throw .invalidParams(field: r.field("subject"), problem) }
        let time = try r.timestamp("time", nullIsAbsent: true)
        let contentType = try r.string("datacontenttype", nullIsAbsent: true)
        if let contentType, !isMediaType(contentType) {
            throw .invalidParams(field: r.field("datacontenttype"), "must be a media type (RFC 2046 type/subtype, e.g. application/json)")
        }
        if let schema = try r.string("dataschema", nullIsAbsent: true), !isAbsoluteURI(schema) {
            throw .invalidParams(field: r.field("dataschema"), "must be a non-empty absolute URI when present")
        }

        var data: JSONObject?
        switch r.object["data"] {
        case nil, .null?: data = nil
        case .object(let o)?: data = o
        case let other?:
            throw .invalidParams(field: r.field("data"), "must be an object (its members become dimensions), not \(other.typeName)")
        }
        if data != nil, let contentType, !isJSONMediaType(contentType) {
            throw .invalidParams(field: r.field("datacontenttype"), "must be a JSON media type when data is present")
        }

        // The idempotency key: CloudEvents ids are unique per source only. The id is escaped
        // ("%" → "%25", "/" → "%2F") so the last "/" always separates it from the source: source
        // "a/b" with id "c" and source "a" with id "b/c" are two keys. (Ids without "/" or "%",
        // UUIDs and the like, keep the key they had before.) By scalar, not by Character: "/"
        // followed by a combining mark is one Character, and must be escaped all the same.
        var escapedId = String.UnicodeScalarView()
        for scalar in id.unicodeScalars {
            switch scalar {
            case "%": escapedId.append(contentsOf: "%25".unicodeScalars)
            case "/": escapedId.append(contentsOf: "%2F".unicodeScalars)
            default: escapedId.append(scalar)
            }
        }
        let idempotencyKey = source + "/" + String(escapedId)
        if let problem = Identifier.problem(with: idempotencyKey) {
            throw .invalidParams(field: r.field("id"), "with its source (idempotency key source/id) \(problem)")
        }

        // customerId: subject, else data.customerId.
        var dataCustomerId: String?
        var resourceId: String?
        var dimensions = JSONObject()
        if let data {
            for (key, value) in data {
                let field = r.field("data.\(key)")
                switch key {
                case "customerId":
                    if value == .null { continue }  // absent, as other null members are
                    guard case .string(let s) = value else {
                        throw .invalidParams(field: field, "must be a string, not \(value.typeName)")
                    }
                    dataCustomerId = s
                case "resourceId":
                    if value == .null { continue }
                    guard case .string(let s) = value else {
                        throw .invalidParams(field: field, "must be a string, not \(value.typeName)")
                    }
                    if let problem = Identifier.problem(with: s) { throw .invalidParams(field: field, problem) }
                    resourceId = s
                default:
                    if value == .null { continue }
                    guard let text = value.scalarText else {
                        throw .invalidParams(field: field, "must be a string, number or boolean, not \(value.typeName)")
                    }
                    try checkDimension(key: key, value: text, field: field)
                    dimensions[key] = .string(text)
                }
            }
            guard dimensions.count <= UsageMethods.dimensionsMax else {
                throw .invalidParams(field: r.field("data"), "may hold at most \(UsageMethods.dimensionsMax) members that become dimensions (besides customerId, resourceId and nulls)")
            }
        }
        let customerId: String
        if let subject {
            if let problem = Identifier.problem(with: subject) { throw .invalidParams(field: r.field("subject"), problem) }
            if let dataCustomerId, !UTF8Exact.equal(dataCustomerId, subject) {
                throw .invalidParams(field: r.field("data.customerId"), "conflicts with subject (the customer)")
            }
            customerId = subject
        } else if let dataCustomerId {
            if let problem = Identifier.problem(with: dataCustomerId) {
                throw .invalidParams(field: r.field("data.customerId"), problem)
            }
            customerId = dataCustomerId
        } else {
            throw .invalidParams(field: r.field("subject"), "is required (the customer id; or data.customerId)")
        }

        var event: JSONObject = [
            "customerId": .string(customerId), "eventName": .string(eventName), "idempotencyKey": .string(idempotencyKey),
        ]
        if let resourceId { event["resourceId"] = .string(resourceId) }
        if let time { event["timestamp"] = .string(time) }
        if !dimensions.isEmpty { event["dimensions"] = .object(dimensions) }
        return [.event(event)]
    }

    // MARK: - Shared checks

    /// CloudEvents 1.0: attribute names consist of lower-case letters a-z and digits 0-9.
    static func isCloudEventsAttributeName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) }
    }

    /// Why `text` is not a CloudEvents String (nil if it is): one may not hold the control
    /// characters U+0000–U+001F and U+007F–U+009F, nor Unicode noncharacters.
    static func cloudEventsStringProblem(_ text: String) -> String? {
        for scalar in text.unicodeScalars {
            let v = scalar.value
            if v <= 0x1F || (0x7F...0x9F).contains(v) {
                return "must not hold the control character \(codePoint(v)) (a CloudEvents String)"
            }
            if (0xFDD0...0xFDEF).contains(v) || v & 0xFFFE == 0xFFFE {
                return "must not hold the noncharacter \(codePoint(v)) (a CloudEvents String)"
            }
        }
        return nil
    }

    /// `U+000A`: a code point as Unicode writes it.
    private static func codePoint(_ value: UInt32) -> String {
        let hex = String(value, radix: 16, uppercase: true)
        return "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
    }

    /// An RFC 3986 URI-reference: unreserved, reserved and `%XX` escapes only (no spaces,
    /// controls, quotes or `<>\\^`{|}`); `[` `]` only around an IP-literal host; at most one `#`;
    /// and a `:` before the first `/`, `?` or `#` only after a valid scheme (a relative reference's
    /// first segment holds none: `::` is not one).
    static func isURIReference(_ text: String) -> Bool {
        guard hasURICharacters(text) else { return false }
        var rest = Substring(text)
        if let hash = rest.firstIndex(of: "#") {
            guard !rest[rest.index(after: hash)...].contains(where: { "#[]".contains($0) }) else { return false }
            rest = rest[..<hash]
        }
        if let delimiter = rest.firstIndex(where: { "/?:".contains($0) }), rest[delimiter] == ":" {
            guard isScheme(rest[..<delimiter]) else { return false }
            rest = rest[rest.index(after: delimiter)...]
        }
        if let question = rest.firstIndex(of: "?") {
            guard !rest[question...].contains(where: { "[]".contains($0) }) else { return false }
            rest = rest[..<question]
        }
        var path = rest
        if rest.hasPrefix("//") {
            let authorityAndPath = rest.dropFirst(2)
            let end = authorityAndPath.firstIndex(of: "/") ?? authorityAndPath.endIndex
            let authority = authorityAndPath[..<end]
            path = authorityAndPath[end...]
            let host = authority.lastIndex(of: "@").map { authority[authority.index(after: $0)...] } ?? authority
            let userinfo = authority[..<host.startIndex]
            guard !userinfo.contains(where: { "[]".contains($0) }) else { return false }
            if host.first == "[" {
                // An IP-literal, then an optional `:port`.
                guard let close = host.firstIndex(of: "]"), host.index(after: host.startIndex) < close else { return false }
                let literal = host[host.index(after: host.startIndex)..<close]
                let after = host[host.index(after: close)...]
                guard !literal.contains("["), after.isEmpty || (after.first == ":" && after.utf8.dropFirst().allSatisfy { (0x30...0x39).contains($0) }) else { return false }
            } else if host.contains(where: { "[]".contains($0) }) {
                return false
            }
        }
        return !path.contains(where: { "[]".contains($0) })
    }

    /// A scheme: a letter, then letters, digits, `+`, `-` or `.`.
    private static func isScheme(_ scheme: Substring) -> Bool {
        guard let first = scheme.utf8.first, (0x41...0x5A).contains(first) || (0x61...0x7A).contains(first) else { return false }
        return scheme.utf8.allSatisfy { isAlphanumericASCII($0) || $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") }
    }

    /// Only RFC 3986 characters: unreserved, reserved and `%XX` escapes.
    private static func hasURICharacters(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        let allowed = Set("-._~:/?#[]@!$&'()*+,;=".utf8)
        func isHex(_ b: UInt8) -> Bool { (0x30...0x39).contains(b) || (0x41...0x46).contains(b) || (0x61...0x66).contains(b) }
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "%") {
                guard i + 2 < bytes.count, isHex(bytes[i + 1]), isHex(bytes[i + 2]) else { return false }
                i += 3
                continue
            }
            guard isAlphanumericASCII(b) || allowed.contains(b) else { return false }
            i += 1
        }
        return true
    }

    /// A URI-reference with a scheme (`scheme:…`, the scheme a letter then letters, digits, `+-.`).
    static func isAbsoluteURI(_ text: String) -> Bool {
        guard isURIReference(text), let colon = text.firstIndex(of: ":") else { return false }
        return isScheme(text[..<colon])
    }

    /// RFC 2046 `type/subtype` (RFC 2045 tokens), parameters after `;` allowed.
    static func isMediaType(_ text: String) -> Bool {
        let essence = text.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        let parts = essence.trimmingASCIISpaces().split(separator: "/", omittingEmptySubsequences: false)
        let tspecials = Set("()<>@,;:\\\"/[]?= ".utf8)
        return parts.count == 2 && parts.allSatisfy { part in
            !part.isEmpty && part.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && !tspecials.contains($0) }
        }
    }

    static func isAlphanumericASCII(_ b: UInt8) -> Bool { (0x30...0x39).contains(b) || (0x41...0x5A).contains(b) || (0x61...0x7A).contains(b) }

    /// `application/json`, `text/json` or any `…/…+json`, parameters (`; charset=utf-8`) allowed.
    static func isJSONMediaType(_ text: String) -> Bool {
        let essence = text.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        let type = essence.trimmingASCIISpaces().lowercased()
        return type == "application/json" || type == "text/json" || (type.contains("/") && type.hasSuffix("+json"))
    }

    /// Dimension key `^[a-zA-Z0-9_$.-]+$` (≤ 256 bytes); value non-empty, ≤ 256 bytes.
    static func checkDimension(key: String, value: String, field: String) throws(RPCFailure) {
        if let problem = Identifier.problem(with: key) { throw .invalidParams(field: field, "key \(problem)") }
        guard key.utf8.allSatisfy(isDimensionKeyByte) else {
            throw .invalidParams(field: field, "key must match ^[a-zA-Z0-9_$.-]+$")
        }
        if let problem = Identifier.problem(with: value) { throw .invalidParams(field: field, problem) }
    }

    static func isDimensionKeyByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "_"), UInt8(ascii: "$"), UInt8(ascii: "."), UInt8(ascii: "-"):
            return true
        default:
            return false
        }
    }
}

extension Substring {
    fileprivate func trimmingASCIISpaces() -> Substring {
        var s = self
        while let c = s.first, c == " " || c == "\t" { s = s.dropFirst() }
        while let c = s.last, c == " " || c == "\t" { s = s.dropLast() }
        return s
    }
}

/// Typed access to one record's members, naming `records[i].<field>` in every error.
private struct RecordReader {
    let object: JSONObject
    let path: String

    func field(_ name: String) -> String { "\(path).\(name)" }

    func rejectUnknown(allowed: Set<String>, what: String) throws(RPCFailure) {
        for key in object.keys where !allowed.contains(key) {
            throw .invalidParams(field: field(key), what)
        }
    }

    /// A string member; absent → nil; null → nil when `nullIsAbsent`, else a type error.
    func string(_ name: String, nullIsAbsent: Bool) throws(RPCFailure) -> String? {
        switch object[name] {
        case nil: return nil
        case .null? where nullIsAbsent: return nil
        case .string(let s)?: return s
        case let other?: throw .invalidParams(field: field(name), "must be a string, not \(other.typeName)")
        }
    }

    func requiredString(_ name: String) throws(RPCFailure) -> String {
        guard object[name] != nil, object[name] != .null else { throw .invalidParams(field: field(name), "is required") }
        return try string(name, nullIsAbsent: false)!
    }

    func id(_ name: String, nullIsAbsent: Bool) throws(RPCFailure) -> String? {
        guard let s = try string(name, nullIsAbsent: nullIsAbsent) else { return nil }
        if let problem = Identifier.problem(with: s) { throw .invalidParams(field: field(name), problem) }
        return s
    }

    func requiredID(_ name: String) throws(RPCFailure) -> String {
        let s = try requiredString(name)
        if let problem = Identifier.problem(with: s) { throw .invalidParams(field: field(name), problem) }
        return s
    }

    /// A JSON number, checked as an exact amount, returned as its original text.
    func requiredNumber(_ name: String) throws(RPCFailure) -> JSONValue {
        switch object[name] {
        case nil, .null?:
            throw .invalidParams(field: field(name), "is required")
        case .number(let text)?:
            do {
                _ = try Amount(parsing: text)
            } catch {
                throw .invalidParams(field: field(name), error.description)
            }
            return .number(text)
        case let other?:
            throw .invalidParams(field: field(name), "must be a number, not \(other.typeName)")
        }
    }

    func bool(_ name: String, nullIsAbsent: Bool) throws(RPCFailure) -> Bool? {
        switch object[name] {
        case nil: return nil
        case .null? where nullIsAbsent: return nil
        case .bool(let b)?: return b
        case let other?: throw .invalidParams(field: field(name), "must be a boolean, not \(other.typeName)")
        }
    }

    /// An RFC 3339 timestamp string (checked; returned as given).
    func timestamp(_ name: String, nullIsAbsent: Bool) throws(RPCFailure) -> String? {
        guard let text = try string(name, nullIsAbsent: nullIsAbsent) else { return nil }
        do {
            _ = try Timestamp(parsingRFC3339: text)
        } catch {
            throw .invalidParams(field: field(name), error.description)
        }
        return text
    }

    func requiredTimestamp(_ name: String) throws(RPCFailure) -> String {
        guard object[name] != nil, object[name] != .null else { throw .invalidParams(field: field(name), "is required") }
        return try timestamp(name, nullIsAbsent: false)!
    }

    /// An object of string values (dimensions), each key and value checked; absent → empty. With
    /// `scalars`, a number or boolean is taken as its JSON text, as reportUsage's dimensions take
    /// them (`3` → "3", `true` → "true"); without, only strings (Octane's labels, by its schema).
    func stringMap(_ name: String, nullIsAbsent: Bool, scalars: Bool = false) throws(RPCFailure) -> JSONObject {
        switch object[name] {
        case nil: return JSONObject()
        case .null? where nullIsAbsent: return JSONObject()
        case .object(let map)?:
            // The limit of reportUsage's dimensions, named by the vendor's field.
            guard map.count <= UsageMethods.dimensionsMax else {
                throw .invalidParams(field: field(name), "may hold at most \(UsageMethods.dimensionsMax) keys (they become dimensions)")
            }
            var out = JSONObject()
            for (key, value) in map {
                let f = field("\(name).\(key)")
                guard let s = scalars ? value.scalarText : value.stringValue else {
                    throw .invalidParams(field: f, scalars ? "must be a string, number or boolean, not \(value.typeName)" : "must be a string, not \(value.typeName)")
                }
                try ImportFormats.checkDimension(key: key, value: s, field: f)
                out[key] = .string(s)
            }
            return out
        case let other?:
            throw .invalidParams(field: field(name), "must be an object of strings, not \(other.typeName)")
        }
    }
}
