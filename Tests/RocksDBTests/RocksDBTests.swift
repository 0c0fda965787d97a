import Foundation
import RocksDB
import Synchronization
import Testing

/// A fresh directory per test (tests run in parallel), removed afterwards.
private final class TempDir {
    let path: String

    init() {
        var template = Array((NSTemporaryDirectory() + "/rocksdb-tests-XXXXXX").utf8CString)
        let result = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(result != nil, "mkdtemp failed")
        path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    func sub(_ name: String) -> String { path + "/" + name }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

private func b(_ string: String) -> [UInt8] { Array(string.utf8) }

/// Collects all (key, value) pairs an iterator yields going forward from its current position.
private func drainForward(_ iterator: Iterator) throws -> [(String, String)] {
    var out: [(String, String)] = []
    while iterator.isValid {
        out.append((String(decoding: iterator.key, as: UTF8.self), String(decoding: iterator.value, as: UTF8.self)))
        iterator.next()
    }
    try iterator.check()
    return out
}

private func keys(_ pairs: [(String, String)]) -> [String] { pairs.map(\.0) }

@Suite struct RocksDBTests {
    @Test func putGetDeleteInTwoColumnFamilies() throws {
        let dir = TempDir()
        let db = try Database(path: dir.sub("db"), columnFamilies: ["a", "b"])
        let a = db.columnFamily("a"), cfB = db.columnFamily("b")
        #expect(a.name == "a")

        try db.put(b("k"), b("in-a"), in: a, sync: true)
        try db.put(b("k"), b("in-b"), in: cfB, sync: false)
        try db.put(b("empty"), [], in: a, sync: false)
        #expect(try db.get(b("k"), in: a) == b("in-a"))
        #expect(try db.get(b("k"), in: cfB) == b("in-b"))
        #expect(try db.get(b("k"), in: db.columnFamily("default")) == nil)
        #expect(try db.get(b("missing"), in: a) == nil)
        // An empty value is present, not missing.
        #expect(try db.get(b("empty"), in: a) == [])

        try db.delete(b("k"), in: a, sync: true)
        #expect(try db.get(b("k"), in: a) == nil)
        #expect(try db.get(b("k"), in: cfB) == b("in-b"))
        // Deleting an absent key is not an error.
        try db.delete(b("never"), in: a, sync: false)
    }

    @Test func readsAndWritesWithPerfCountersDisabledOnTheThread() throws {
        let dir = TempDir()
        let db = try Database(path: dir.sub("db"), columnFamilies: ["a"])
        let a = db.columnFamily("a")
        // On a thread of its own, as the writer does (the setting is per thread); read from this one.
        let failures = Mutex(0)
        let done = DispatchSemaphore(value: 0)
        Thread {
            PerfCounters.disableOnThisThread()
            for i in 0..<100 {
                do { try db.put(b("k\(i)"), b("v\(i)"), in: a, sync: false) } catch { failures.withLock { $0 += 1 } }
            }
            done.signal()
        }.start()
        done.wait()
        #expect(failures.withLock { $0 } == 0)
        #expect(try db.get(b("k42"), in: a) == b("v42"))
        let iterator = db.makeIterator(in: a)
        iterator.seekToFirst()
        #expect(try drainForward(iterator).count == 100)
    }

    @Test func writeBatchAcrossColumnFamiliesAndDeleteRange() throws {
        let dir = TempDir()
        let db = try Database(path: dir.sub("db"), columnFamilies: ["a", "b"])
        let a = db.columnFamily("a"), cfB = db.columnFamily("b")
        for key in ["r1", "r2", "r3", "s1"] {
            try db.put(b(key), b("old"), in: a, sync: false)
        }

        let batch = WriteBatch()
        #expect(batch.count == 0)
        let emptySize = batch.dataSizeBytes
        batch.put(b("x"), b("1"), in: a)
        batch.put(b("y"), b("2"), in: cfB)
        batch.delete(b("r1"), in: a)
        batch.deleteRange(from: b("r2"), to: b("r3"), in: a)  // deletes r2 only: end is exclusive
        #expect(batch.count == 4)
        #expect(batch.dataSizeBytes > emptySize)

        // Nothing is visible before the write.
        #expect(try db.get(b("x"), in: a) == nil)
        #expect(try db.get(b("y"), in: cfB) == nil)
        #expect(try db.get(b("r2"), in: a) == b("old"))

        try db.write(batch, sync: true)
        #expect(try db.get(b("x"), in: a) == b("1"))
        #expect(try db.get(b("y"), in: cfB) == b("2"))
        #expect(try db.get(b("r1"), in: a) == nil)
        #expect(try db.get(b("r2"), in: a) == nil)
        #expect(try db.get(b("r3"), in: a) == b("old"))
        #expect(try db.get(b("s1"), in: a) == b("old"))

        batch.clear()
        #expect(batch.count == 0)
        #expect(batch.dataSizeBytes == emptySize)

        // A batch whose range deletion spans the whole prefix.
        batch.deleteRange(from: b("r"), to: b("s"), in: a)
        try db.write(batch, sync: false)
        let it = db.makeIterator(in: a)
        it.seekToFirst()
        #expect(keys(try drainForward(it)) == ["s1", "x"])
    }

    @Test func iteratorBoundsSeeksAndReverse() throws {
        let dir = TempDir()
        let db = try Database(path: dir.sub("db"), columnFamilies: ["idx"])
        let cf = db.columnFamily("idx")
        for key in ["a/1", "a/2", "b/1", "b/2", "b/3", "c/1"] {
            try db.put(b(key), b("v" + key), in: cf, sync: false)
        }

        // Prefix range b/ via [b/, b0) — '0' is the byte after '/'.
        let prefix = db.makeIterator(in: cf, lowerBound: b("b/"), upperBound: b("b0"))
        prefix.seekToFirst()
        #expect(keys(try drainForward(prefix)) == ["b/1", "b/2", "b/3"])

        // seekToLast respects the upper bound; then walk backwards.
        prefix.seekToLast()
        var reversed: [String] = []
        while prefix.isValid {
            reversed.append(String(decoding: prefix.key, as: UTF8.self))
            prefix.previous()
        }
        try prefix.check()
        #expect(reversed == ["b/3", "b/2", "b/1"])

        // Bounds exclude everything outside even on seek.
        prefix.seek(to: b("a"))
        #expect(prefix.isValid && prefix.key == b("b/1"))
        prefix.seek(to: b("c"))
        #expect(!prefix.isValid)

        let all = db.makeIterator(in: cf)
        all.seekToLast()
        #expect(all.key == b("c/1"))
        all.seekForPrev(b("b/25"))
        #expect(all.key == b("b/2"))
        all.seekForPrev(b("b/2"))
        #expect(all.key == b("b/2"))
        all.seek(to: b("b/25"))
        #expect(all.key == b("b/3"))
        all.seekForPrev(b("0"))
        #expect(!all.isValid)

        // Zero-copy accessor sees the same bytes as the copying ones.
        all.seek(to: b("a/2"))
        let seen = all.withKeyAndValue { key, value in
            (String(decoding: key, as: UTF8.self), String(decoding: value, as: UTF8.self))
        }
        #expect(seen.0 == "a/2" && seen.1 == "va/2")
        #expect(all.value == b("va/2"))
    }

    @Test func snapshotIsolation() throws {
        let dir = TempDir()
        let db = try Database(path: dir.sub("db"), columnFamilies: ["a"])
        let a = db.columnFamily("a")
        try db.put(b("k1"), b("before"), in: a, sync: false)
        try db.put(b("gone"), b("here"), in: a, sync: false)

        let snapshot = db.snapshot()
        try db.put(b("k1"), b("after"), in: a, sync: false)
        try db.put(b("k2"), b("new"), in: a, sync: false)
        try db.delete(b("gone"), in: a, sync: false)

        #expect(try db.get(b("k1"), in: a, snapshot: snapshot) == b("before"))
        #expect(try db.get(b("k2"), in: a, snapshot: snapshot) == nil)
        #expect(try db.get(b("gone"), in: a, snapshot: snapshot) == b("here"))
        #expect(try db.get(b("k1"), in: a) == b("after"))

        let it = db.makeIterator(in: a, snapshot: snapshot)
        it.seekToFirst()
        let pairs = try drainForward(it)
        #expect(keys(pairs) == ["gone", "k1"])
        #expect(pairs.map(\.1) == ["here", "before"])
    }

    @Test func reopenPersistsAndHandlesColumnFamilySets() throws {
        let dir = TempDir()
        let path = dir.sub("db")
        do {
            let db = try Database(path: path, columnFamilies: ["a", "b"])
            try db.put(b("k"), b("v"), in: db.columnFamily("a"), sync: true)
            try db.put(b("kb"), b("vb"), in: db.columnFamily("b"), sync: true)
        }
        #expect(Set(try Database.listColumnFamilies(path: path)) == ["default", "a", "b"])

        // Name an extra CF: it is created; data persisted.
        do {
            let db = try Database(path: path, columnFamilies: ["a", "b", "c"])
            #expect(try db.get(b("k"), in: db.columnFamily("a")) == b("v"))
            try db.put(b("kc"), b("vc"), in: db.columnFamily("c"), sync: true)
        }
        #expect(Set(try Database.listColumnFamilies(path: path)) == ["default", "a", "b", "c"])

        // Name only one: the others are still opened and usable.
        let db = try Database(path: path, columnFamilies: ["a"])
        #expect(try db.get(b("kb"), in: db.columnFamily("b")) == b("vb"))
        #expect(try db.get(b("kc"), in: db.columnFamily("c")) == b("vc"))
        #expect(db.path == path)
    }

    @Test func checkpointIsAnOpenableCopy() throws {
        let dir = TempDir()
        let checkpointPath = dir.sub("checkpoint")
        do {
            let db = try Database(path: dir.sub("db"), columnFamilies: ["a"])
            try db.put(b("k"), b("v"), in: db.columnFamily("a"), sync: false)  // still in the memtable
            try db.createCheckpoint(at: checkpointPath)
            try db.put(b("later"), b("x"), in: db.columnFamily("a"), sync: false)

            // A second checkpoint onto an existing directory is refused.
            #expect(throws: RocksDBError.self) { try db.createCheckpoint(at: checkpointPath) }
        }
        let copy = try Database(path: checkpointPath, columnFamilies: [], options: {
            var options = DatabaseOptions()
            options.createIfMissing = false
            return options
        }())
        let a = copy.columnFamily("a")
        #expect(try copy.get(b("k"), in: a) == b("v"))
        #expect(try copy.get(b("later"), in: a) == nil)
    }

    @Test func secondOpenOfSamePathFailsWithRocksDBLockError() throws {
        let dir = TempDir()
        let path = dir.sub("db")
        let db = try Database(path: path, columnFamilies: ["a"])
        do {
            _ = try Database(path: path, columnFamilies: ["a"])
            Issue.record("second open of a locked database succeeded")
        } catch {
            #expect(error.kind == .ioError)
            #expect(error.operation == "open")
            #expect(error.message.hasPrefix("IO error: "))
            #expect(error.message.contains("LOCK"))
            #expect(error.description == "rocksdb open failed: " + error.message)
        }
        // The first handle is unaffected.
        try db.put(b("k"), b("v"), in: db.columnFamily("a"), sync: false)

        // Destroying a database that is open also fails on the lock.
        #expect(throws: RocksDBError.self) { try Database.destroy(path: path) }
    }

    @Test func readOnlyOpenSeesDataAndRejectsWrites() throws {
        let dir = TempDir()
        let path = dir.sub("db")
        do {
            let db = try Database(path: path, columnFamilies: ["a"])
            try db.put(b("flushed"), b("1"), in: db.columnFamily("a"), sync: true)
            try db.flush()
            try db.put(b("walOnly"), b("2"), in: db.columnFamily("a"), sync: true)
        }
        var options = DatabaseOptions()
        options.readOnly = true
        let db = try Database(path: path, columnFamilies: ["a"], options: options)
        let a = db.columnFamily("a")
        #expect(try db.get(b("flushed"), in: a) == b("1"))
        #expect(try db.get(b("walOnly"), in: a) == b("2"))

        do {
            try db.put(b("x"), b("y"), in: a, sync: true)
            Issue.record("put on a read-only database succeeded")
        } catch {
            #expect(error.kind == .notSupported)
            #expect(error.operation == "put")
        }
        let batch = WriteBatch()
        batch.put(b("x"), b("y"), in: a)
        #expect(throws: RocksDBError.self) { try db.write(batch, sync: false) }
        #expect(throws: RocksDBError.self) { try db.delete(b("flushed"), in: a, sync: false) }
        #expect(try db.get(b("x"), in: a) == nil)

        // A read-only open cannot create a column family.
        #expect(throws: RocksDBError.self) {
            _ = try Database(path: path, columnFamilies: ["nope"], options: options)
        }
    }

    @Test func missingDatabaseWithoutCreateIfMissing() throws {
        let dir = TempDir()
        var options = DatabaseOptions()
        options.createIfMissing = false
        do {
            _ = try Database(path: dir.sub("absent"), columnFamilies: [], options: options)
            Issue.record("open of a missing database succeeded")
        } catch {
            #expect(error.kind == .invalidArgument)
            #expect(!error.message.isEmpty)
        }
        #expect(throws: RocksDBError.self) { _ = try Database.listColumnFamilies(path: dir.sub("absent")) }
    }

    @Test func flushPropertiesCompactAndDestroy() throws {
        let dir = TempDir()
        let path = dir.sub("db")
        do {
            var options = DatabaseOptions()
            options.writeBufferSizeBytes = 1 << 20
            options.walRecoveryMode = .absoluteConsistency
            let db = try Database(path: path, columnFamilies: ["a"], options: options)
            let a = db.columnFamily("a")
            for i in 0..<100 {
                try db.put(b("key\(i)"), b("value\(i)"), in: a, sync: false)
            }
            try db.flush()
            #expect(db.property("rocksdb.num-files-at-level0", in: a) == "1")
            #expect(db.property("rocksdb.estimate-num-keys", in: a) == "100")
            #expect(db.property("rocksdb.estimate-num-keys") == "0")
            #expect(db.property("rocksdb.no-such-property") == nil)
            db.compactRange(in: a)
            db.compactRange(in: a, from: b("key1"), to: b("key5"))
            #expect(db.property("rocksdb.num-files-at-level0", in: a) == "0")
            #expect(try db.get(b("key42"), in: a) == b("value42"))
        }
        try Database.destroy(path: path)
        #expect(throws: RocksDBError.self) { _ = try Database.listColumnFamilies(path: path) }
    }

    /// RocksDB renames `LOG` to `LOG.old.<time>` at every open; without a bound (its default
    /// keeps 1000) every start, refused start and read-only check leaves one more file.
    @Test func infoLogsAreBoundedAcrossOpens() throws {
        let dir = TempDir()
        let path = dir.sub("db")
        var options = DatabaseOptions()
        options.infoLogFilesKept = 3
        for round in 0..<8 {
            let db = try Database(path: path, columnFamilies: ["a"], options: options)
            try db.put(b("k\(round)"), b("v"), in: db.columnFamily("a"), sync: true)
        }
        let logs = try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasPrefix("LOG") }
        #expect(logs.count <= 4 && logs.contains("LOG"), "\(logs.sorted())")
    }

    @Test func destroyingAMissingDatabaseSucceeds() throws {
        let dir = TempDir()
        try Database.destroy(path: dir.sub("never-created"))
    }

    @Test func concurrentWritersAndReadersShareOneDatabase() async throws {
        let dir = TempDir()
        let db = try Database(path: dir.sub("db"), columnFamilies: ["a"])
        let a = db.columnFamily("a")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<4 {
                group.addTask {
                    for i in 0..<200 {
                        try db.put(b("w\(writer)-\(i)"), b("\(i)"), in: a, sync: false)
                        _ = try db.get(b("w\(writer)-\(i / 2)"), in: a)
                    }
                }
            }
            try await group.waitForAll()
        }
        let it = db.makeIterator(in: a)
        it.seekToFirst()
        #expect(try drainForward(it).count == 800)
    }
}
