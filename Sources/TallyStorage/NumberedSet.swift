/// A set of ids kept as small numbered records, so that adding or removing one writes a few
/// records whatever the set's size, and reading it needs only point reads (which every projection
/// source has: the writer's group, the store, a replay's memory).
///
/// - `<tag>\0<scope…>` → how many members (8 bytes, big-endian; absent when empty)
/// - `<tag>\0<scope…>\0<position>` → the member at `position` (8 bytes, big-endian, from 0)
/// - `<tag>i\0<scope…>\0<member>` → its position
///
/// Members are in the order they were added until a removal, which moves the last member into the
/// freed position so positions stay dense; readers of a set that is removed from sort.
struct NumberedSet {
    let tag: String
    let scope: [String]

    private var countKey: [UInt8] { KeyLayout.key(tag, scope) }
    private func memberKey(_ position: UInt64) -> [UInt8] { countKey + [0] + KeyLayout.bigEndian(position) }
    private func positionKey(_ member: String) -> [UInt8] { KeyLayout.key(tag + "i", scope + [member]) }
    private var what: String { "\(tag)/\(scope.joined(separator: "/"))" }

    func count(in source: some ProjectionSource) throws(StorageError) -> UInt64 {
        guard let bytes = try source.projection(countKey) else { return 0 }
        guard let count = KeyLayout.uint64(bigEndian: bytes) else { throw .corrupt("\(what): count of \(bytes.count) bytes, not 8") }
        return count
    }

    func member(at position: UInt64, in source: some ProjectionSource) throws(StorageError) -> String {
        guard let bytes = try source.projection(memberKey(position)) else { throw .corrupt("\(what): member \(position) missing") }
        return String(decoding: bytes, as: UTF8.self)
    }

    func members(in source: some ProjectionSource) throws(StorageError) -> [String] {
        let count = try count(in: source)
        var result: [String] = []
        result.reserveCapacity(Int(clamping: count))
        for position in 0..<count { result.append(try member(at: position, in: source)) }
        return result
    }

    /// Adds `member`; true when the set was empty before. A member already in the set stays where it is.
    @discardableResult
    func insert(_ member: String, into sink: inout some ProjectionSink) throws(StorageError) -> Bool {
        guard try sink.projection(positionKey(member)) == nil else { return false }
        let count = try count(in: sink)
        sink.setProjection(memberKey(count), Array(member.utf8))
        sink.setProjection(positionKey(member), KeyLayout.bigEndian(count))
        sink.setProjection(countKey, KeyLayout.bigEndian(count + 1))
        return count == 0
    }

    /// Removes `member`; true when the set is empty after. A member not in the set changes nothing.
    @discardableResult
    func remove(_ member: String, from sink: inout some ProjectionSink) throws(StorageError) -> Bool {
        guard let bytes = try sink.projection(positionKey(member)) else { return false }
        guard let position = KeyLayout.uint64(bigEndian: bytes) else { throw .corrupt("\(what): position of \(member) of \(bytes.count) bytes, not 8") }
        let count = try count(in: sink)
        guard position < count else { throw .corrupt("\(what): \(member) at \(position) of \(count)") }
        let last = count - 1
        if position != last {
            let moved = try self.member(at: last, in: sink)
            sink.setProjection(memberKey(position), Array(moved.utf8))
            sink.setProjection(positionKey(moved), KeyLayout.bigEndian(position))
        }
        sink.setProjection(memberKey(last), nil)
        sink.setProjection(positionKey(member), nil)
        sink.setProjection(countKey, last == 0 ? nil : KeyLayout.bigEndian(last))
        return last == 0
    }
}
