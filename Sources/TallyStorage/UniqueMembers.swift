import HeapModule
import RocksDB

/// Exact distinct counts across several UNIQUE_COUNT cells.
///
/// Each cell keeps its counted values as records `uu\0<cell key>\0<value>`, in value order. The
/// distinct count of a union of cells (a history point that groups several dimension sets, a
/// month of day cells, several resources) is a k-way merge of those ordered runs: memory grows
/// with the number of cells merged, never with the number of distinct values.
public protocol MemberCursors {
    /// A cursor over the records with keys in [lower, upper), in key order.
    func memberCursor(from lower: [UInt8], to upper: [UInt8]) throws(StorageError) -> any MemberCursor
}

/// Pulls record keys in key order.
public protocol MemberCursor {
    /// The next key, or nil at the end.
    mutating func nextKey() throws(StorageError) -> [UInt8]?
}

extension MemberCursors {
    /// The number of distinct values counted by any of `cells` (series cell keys).
    public func distinctMembers(of cells: [[UInt8]]) throws(StorageError) -> UInt64 {
        var cursors: [any MemberCursor] = []
        var prefixLengths: [Int] = []
        var heap = Heap<MergeHead>()
        for cell in Set(cells.map(ByteKey.init)) {
            let prefix = KeyLayout.uniqueMemberKey(cell: cell.bytes, value: "")
            var cursor = try memberCursor(from: prefix, to: KeyLayout.prefixEnd(prefix))
            if let first = try cursor.nextKey() {
                heap.insert(MergeHead(value: Array(first[prefix.count...]), cursor: cursors.count))
            }
            cursors.append(cursor)
            prefixLengths.append(prefix.count)
        }
        var count: UInt64 = 0
        var last: [UInt8]?
        while let head = heap.popMin() {
            if head.value != last {
                count += 1
                last = head.value
            }
            if let next = try cursors[head.cursor].nextKey() {
                heap.insert(MergeHead(value: Array(next[prefixLengths[head.cursor]...]), cursor: head.cursor))
            }
        }
        return count
    }
}

/// The smallest unread value of one cursor, in a k-way merge.
private struct MergeHead: Comparable {
    var value: [UInt8]
    var cursor: Int

    static func < (a: MergeHead, b: MergeHead) -> Bool {
        a.value.lexicographicallyPrecedes(b.value) || (a.value == b.value && a.cursor < b.cursor)
    }
}

/// A cursor over records already in memory.
struct ArrayMemberCursor: MemberCursor {
    var keys: [[UInt8]]
    var index = 0

    mutating func nextKey() -> [UInt8]? {
        guard index < keys.count else { return nil }
        defer { index += 1 }
        return keys[index]
    }
}

extension MemoryProjections: MemberCursors {
    public func memberCursor(from lower: [UInt8], to upper: [UInt8]) -> any MemberCursor {
        ArrayMemberCursor(keys: scan(from: lower, to: upper).map(\.key))
    }
}

extension LedgerStore: MemberCursors {
    /// Streams from RocksDB: a cell's members are never all in memory at once.
    public func memberCursor(from lower: [UInt8], to upper: [UInt8]) -> any MemberCursor {
        RocksDBMemberCursor(iterator: database.makeIterator(in: projections, lowerBound: lower, upperBound: upper))
    }
}

struct RocksDBMemberCursor: MemberCursor {
    let iterator: RocksDB.Iterator
    var started = false

    init(iterator: RocksDB.Iterator) {
        self.iterator = iterator
    }

    mutating func nextKey() throws(StorageError) -> [UInt8]? {
        if started {
            iterator.next()
        } else {
            iterator.seekToFirst()
            started = true
        }
        guard iterator.isValid else {
            do {
                try iterator.check()
            } catch {
                throw .rocksDB(error)
            }
            return nil
        }
        return iterator.key
    }
}
