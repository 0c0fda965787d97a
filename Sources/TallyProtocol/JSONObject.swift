import TallyCore

/// An insertion-ordered JSON object with unique keys (keys compared by UTF-8 bytes).
///
/// Equality and hashing ignore member order (JSON objects are unordered); iteration,
/// `keys` and serialization follow insertion order.
public struct JSONObject: Sendable, Hashable, Sequence, ExpressibleByDictionaryLiteral {
    public typealias Element = (key: String, value: JSONValue)

    /// Objects with more members than this keep a hash index for lookups.
    static let indexThreshold = 16

    var entries: [Element]
    var index: [ByteExactString: Int]?

    public init() {
        entries = []
        index = nil
    }

    /// Precondition: keys are unique.
    public init(_ pairs: [(String, JSONValue)]) {
        entries = []
        entries.reserveCapacity(pairs.count)
        index = nil
        for (k, v) in pairs {
            precondition(firstIndex(of: k) == nil, "JSONObject: duplicate key \"\(k)\"")
            appendUnchecked(k, v)
        }
    }

    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.init(elements)
    }

    /// Used by the parser, which has already checked uniqueness (and may have built the index).
    init(uncheckedEntries: [Element], index: [ByteExactString: Int]?) {
        self.entries = uncheckedEntries
        if index == nil && uncheckedEntries.count > Self.indexThreshold {
            self.index = nil
            rebuildIndex()
        } else {
            self.index = index
        }
    }

    public var keys: [String] { entries.map(\.key) }
    public var values: [JSONValue] { entries.map(\.value) }
    public var count: Int { entries.count }
    public var isEmpty: Bool { entries.isEmpty }

    /// Get: the member's value or nil. Set: replaces in place, or appends a new member; nil removes.
    public subscript(key: String) -> JSONValue? {
        get {
            guard let i = firstIndex(of: key) else { return nil }
            return entries[i].value
        }
        set {
            if let i = firstIndex(of: key) {
                if let newValue {
                    entries[i].value = newValue
                } else {
                    entries.remove(at: i)
                    rebuildIndex()
                }
            } else if let newValue {
                appendUnchecked(key, newValue)
            }
        }
    }

    public func makeIterator() -> IndexingIterator<[Element]> {
        entries.makeIterator()
    }

    public var underestimatedCount: Int { entries.count }

    // MARK: internals

    @inline(__always)
    func firstIndex(of key: String) -> Int? {
        if let index { return index[ByteExactString(key)] }
        for i in entries.indices where UTF8Exact.equal(entries[i].key, key) {
            return i
        }
        return nil
    }

    mutating func appendUnchecked(_ key: String, _ value: JSONValue) {
        entries.append((key: key, value: value))
        if index != nil {
            index![ByteExactString(key)] = entries.count - 1
        } else if entries.count > Self.indexThreshold {
            rebuildIndex()
        }
    }

    mutating func rebuildIndex() {
        guard entries.count > Self.indexThreshold else {
            index = nil
            return
        }
        var d = [ByteExactString: Int](minimumCapacity: entries.count)
        for (i, e) in entries.enumerated() { d[ByteExactString(e.key)] = i }
        index = d
    }

    // MARK: Hashable (order-insensitive)

    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        guard lhs.entries.count == rhs.entries.count else { return false }
        // Fast path: same order.
        var sameOrder = true
        for i in lhs.entries.indices {
            let l = lhs.entries[i]
            let r = rhs.entries[i]
            if !UTF8Exact.equal(l.key, r.key) {
                sameOrder = false
                break
            }
            if l.value != r.value { return false }
        }
        if sameOrder { return true }
        for (k, v) in lhs.entries {
            guard let j = rhs.firstIndex(of: k), rhs.entries[j].value == v else { return false }
        }
        return true
    }

    public func hash(into hasher: inout Hasher) {
        var acc = 0
        for (k, v) in entries {
            var h = Hasher()
            UTF8Exact.hash(k, into: &h)
            h.combine(v)
            acc = acc &+ h.finalize()
        }
        hasher.combine(entries.count)
        hasher.combine(acc)
    }
}
