/// Strings compared, ordered and hashed by their UTF-8 bytes. Swift's `==` on `String` is
/// canonical equivalence ("é" == "e\u{301}"), but JSON keys and the byte keys of the projections
/// tell those two apart: where a String stands for such a key, it must be compared this way.
public enum UTF8Exact {
    /// True if the two strings have identical UTF-8 bytes.
    @inlinable @inline(__always)
    public static func equal(_ a: String, _ b: String) -> Bool {
        let au = a.utf8
        let bu = b.utf8
        guard au.count == bu.count else { return false }
        let fast: Bool?? = au.withContiguousStorageIfAvailable { pa in
            bu.withContiguousStorageIfAvailable { pb in pa.elementsEqual(pb) }
        }
        if let f = fast, let r = f { return r }
        return au.elementsEqual(bu)
    }

    /// True if both are nil or both hold identical UTF-8 bytes (an optional id against a filter).
    @inlinable @inline(__always)
    public static func equal(_ a: String?, _ b: String?) -> Bool {
        switch (a, b) {
        case (nil, nil): true
        case let (x?, y?): equal(x, y)
        default: false
        }
    }

    /// Orders strings by their UTF-8 bytes (equivalently, by Unicode scalar values).
    @inlinable @inline(__always)
    public static func less(_ a: String, _ b: String) -> Bool { a.utf8.lexicographicallyPrecedes(b.utf8) }

    @inlinable @inline(__always)
    public static func hash(_ s: String, into hasher: inout Hasher) {
        let u = s.utf8
        hasher.combine(u.count)
        let done: Void? = u.withContiguousStorageIfAvailable { p in hasher.combine(bytes: UnsafeRawBufferPointer(p)) }
        if done == nil {
            for b in u { hasher.combine(b) }
        }
    }
}

/// A String as a dictionary key, hashed and compared by its UTF-8 bytes (`UTF8Exact`).
public struct ByteExactString: Hashable, Sendable {
    public let string: String
    @inlinable public init(_ string: String) { self.string = string }
    @inlinable public static func == (lhs: Self, rhs: Self) -> Bool { UTF8Exact.equal(lhs.string, rhs.string) }
    @inlinable public func hash(into hasher: inout Hasher) { UTF8Exact.hash(string, into: &hasher) }
}
