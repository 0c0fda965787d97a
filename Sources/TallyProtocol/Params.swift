public import TallyCore

/// Reads a method's named params with exact types, and rejects what it did not read.
///
/// Every getter throws `RPCFailure.invalidParams` naming the field. `finish()` rejects unknown
/// fields, so a typo (`"custmerId"`) is an error, not silently ignored.
public struct Params {
    public let object: JSONObject
    private let path: String
    /// Names by bytes, as JSON keys are: "\u{212A}ey" (KELVIN SIGN) is not "Key", and a param
    /// spelled so is unknown, not taken for the one read.
    private var read: Set<ByteExactString> = []

    public init(_ object: JSONObject, path: String = "") {
        self.object = object
        self.path = path
    }

    public func field(_ name: String) -> String { path.isEmpty ? name : "\(path).\(name)" }

    mutating func markRead(_ name: String) { read.insert(ByteExactString(name)) }

    private mutating func value(_ name: String) -> JSONValue? {
        read.insert(ByteExactString(name))
        guard let value = object[name] else { return nil }
        return value
    }

    public mutating func requiredString(_ name: String) throws(RPCFailure) -> String {
        guard let s = try optionalString(name) else { throw .invalidParams(field: field(name), "is required") }
        return s
    }

    public mutating func optionalString(_ name: String) throws(RPCFailure) -> String? {
        switch value(name) {
        case nil, .null?: return nil
        case .string(let s)?: return s
        case let other?: throw .invalidParams(field: field(name), "must be a string, not \(other.typeName)")
        }
    }

    /// The most bytes of a free-text param (a display name, a comment, a unit).
    public static let textBytesMax = 1024

    /// Free text: any string of at most `textBytesMax` bytes.
    public mutating func optionalText(_ name: String) throws(RPCFailure) -> String? {
        guard let s = try optionalString(name) else { return nil }
        guard s.utf8.count <= Self.textBytesMax else { throw .invalidParams(field: field(name), "must be at most \(Self.textBytesMax) bytes") }
        return s
    }

    public mutating func requiredText(_ name: String) throws(RPCFailure) -> String {
        guard let s = try optionalText(name) else { throw .invalidParams(field: field(name), "is required") }
        return s
    }

    /// An id: non-empty, at most 256 bytes.
    public mutating func requiredID(_ name: String) throws(RPCFailure) -> String {
        let s = try requiredString(name)
        try checkID(s, name)
        return s
    }

    public mutating func optionalID(_ name: String) throws(RPCFailure) -> String? {
        guard let s = try optionalString(name) else { return nil }
        try checkID(s, name)
        return s
    }

    private func checkID(_ s: String, _ name: String) throws(RPCFailure) {
        if let problem = Identifier.problem(with: s) { throw .invalidParams(field: field(name), problem) }
    }

    /// Whether the field is there with the value null (which getters read as absent).
    public func isNull(_ name: String) -> Bool {
        if case .null? = object[name] { return true }
        return false
    }

    /// A string field whose explicit null means "clear it", absence "leave it".
    public mutating func change(_ name: String, bytesMax: Int = Params.textBytesMax) throws(RPCFailure) -> FieldChange<String> {
        switch value(name) {
        case nil: return .unchanged
        case .null?: return .cleared
        case .string(let s)?:
            guard s.utf8.count <= bytesMax else { throw .invalidParams(field: field(name), "must be at most \(bytesMax) bytes") }
            return .set(s)
        case let other?: throw .invalidParams(field: field(name), "must be a string or null, not \(other.typeName)")
        }
    }

    public mutating func optionalBool(_ name: String) throws(RPCFailure) -> Bool? {
        switch value(name) {
        case nil, .null?: return nil
        case .bool(let b)?: return b
        case let other?: throw .invalidParams(field: field(name), "must be a boolean, not \(other.typeName)")
        }
    }

    /// The integer a JSON number's text denotes: `10`, and also `10.0` or `1e1`, which JSON Schema
    /// (and so the published OpenRPC document) counts as integers too; nil for a fraction or a
    /// number beyond 10^21.
    static func integer(_ text: String) -> Int128? {
        if let int = Int128(text) { return int }
        guard let amount = try? Amount(parsing: text), amount.units % Amount.unitsPerOne == 0 else { return nil }
        return amount.units / Amount.unitsPerOne
    }

    /// An integer in `range`: a JSON number with no fractional part.
    public mutating func optionalInt(_ name: String, in range: ClosedRange<Int>) throws(RPCFailure) -> Int? {
        switch value(name) {
        case nil, .null?: return nil
        case .number(let text)?:
            guard let int = Self.integer(text).flatMap(Int.init(exactly:)), range.contains(int) else {
                throw .invalidParams(field: field(name), "must be an integer from \(range.lowerBound) to \(range.upperBound)")
            }
            return int
        case let other?: throw .invalidParams(field: field(name), "must be an integer, not \(other.typeName)")
        }
    }

    public mutating func optionalUInt64(_ name: String) throws(RPCFailure) -> UInt64? {
        switch value(name) {
        case nil, .null?: return nil
        case .number(let text)?:
            guard let int = Self.integer(text).flatMap(UInt64.init(exactly:)) else { throw .invalidParams(field: field(name), "must be a non-negative integer") }
            return int
        case let other?: throw .invalidParams(field: field(name), "must be a non-negative integer, not \(other.typeName)")
        }
    }

    /// An exact decimal: a JSON number or a decimal string.
    public mutating func optionalAmount(_ name: String) throws(RPCFailure) -> Amount? {
        let text: String
        switch value(name) {
        case nil, .null?: return nil
        case .number(let t)?: text = t
        case .string(let t)?: text = t
        case let other?: throw .invalidParams(field: field(name), "must be a number or a decimal string, not \(other.typeName)")
        }
        do {
            return try Amount(parsing: text)
        } catch {
            throw .invalidParams(field: field(name), error.description)
        }
    }

    public mutating func requiredAmount(_ name: String) throws(RPCFailure) -> Amount {
        guard let amount = try optionalAmount(name) else { throw .invalidParams(field: field(name), "is required") }
        return amount
    }

    public mutating func optionalTimestamp(_ name: String) throws(RPCFailure) -> Timestamp? {
        guard let text = try optionalString(name) else { return nil }
        do {
            return try Timestamp(parsingRFC3339: text)
        } catch {
            throw .invalidParams(field: field(name), error.description)
        }
    }

    /// A flat object of string values (metadata, dimensions), sorted by key.
    public mutating func optionalStringMap(_ name: String, keysMax: Int = 64) throws(RPCFailure) -> [(String, String)]? {
        switch value(name) {
        case nil: return nil
        case .null?: return []
        case .object(let map)?:
            guard map.count <= keysMax else { throw .invalidParams(field: field(name), "must have at most \(keysMax) keys") }
            var pairs: [(String, String)] = []
            for (key, value) in map {
                if let problem = Identifier.problem(with: key) { throw .invalidParams(field: field("\(name).\(key)"), "key \(problem)") }
                guard case .string(let s) = value else {
                    throw .invalidParams(field: field("\(name).\(key)"), "must be a string, not \(value.typeName)")
                }
                guard s.utf8.count <= 1024 else { throw .invalidParams(field: field("\(name).\(key)"), "must be at most 1024 bytes") }
                pairs.append((key, s))
            }
            return pairs.sorted { $0.0 < $1.0 }
        case let other?: throw .invalidParams(field: field(name), "must be an object of strings, not \(other.typeName)")
        }
    }

    /// Params that are one required id and an optional idempotencyKey (voidCreditGrant,
    /// cancelSubscription): the id.
    public static func singleID(_ name: String, in object: JSONObject) throws(RPCFailure) -> String {
        var p = Params(object)
        let id = try p.requiredID(name)
        _ = try p.optionalID("idempotencyKey")
        try p.finish()
        return id
    }

    /// Rejects any field that no getter asked for.
    public func finish() throws(RPCFailure) {
        for key in object.keys where !read.contains(ByteExactString(key)) {
            // A hostile name is named by its start (it is quoted twice: message and data.field).
            throw .invalidParams(field: field(InputExcerpt.cut(key)), "is not a known field")
        }
    }
}
