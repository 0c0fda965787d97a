import Foundation
public import TallyStorage
#if canImport(Glibc)
import Glibc
#endif

/// The last committed sequence and its hash, kept in a small file beside the database
/// (`<dataDir>/anchor`), outside RocksDB.
///
/// Why: RocksDB can only check that its own files agree with each other. A `db/` replaced by an
/// older copy, a WAL cut short (RocksDB drops a torn tail silently, as it must after a crash) or
/// lost files that take the newest events with them all leave a database that opens cleanly and
/// chains — just to an older head. The anchor remembers how far the log really got, so such a
/// database is refused at start instead of served.
///
/// The anchor is written after each group's synced RocksDB write, so it can lag the database
/// (after a power loss, it was not fsynced) but never lead it: a lagging anchor is still checked
/// against the event at its sequence.
public struct Anchor: Sendable, Equatable, CustomStringConvertible {
    public var sequence: UInt64
    public var hash: [UInt8]

    public init(sequence: UInt64, hash: [UInt8]) {
        precondition(hash.count == EventRecord.hashBytes)
        self.sequence = sequence
        self.hash = hash
    }

    public var description: String { "sequence \(sequence), hash \(hash.hexString)" }

    /// The file's name inside the data directory.
    public static let fileName = "anchor"
    public static let formatVersion = 1
    /// fsync the in-place updates every this many commits (and at shutdown); between them the
    /// anchor may lag after a power loss, which the start-up check allows.
    static let syncIntervalCommits = 256

    public static func path(in dataDirectory: String) -> String { dataDirectory + "/" + fileName }

    /// The anchor's copy beside the data directory, `<parent>/.<name>.tally-anchor`: a rollback of
    /// the *whole* data directory (a file-level backup put back, a copy moved over it) takes the
    /// anchor inside with it, but not this one. Kept best-effort: where the parent cannot be
    /// written, there is no copy (the daemon says so at start).
    public static func mirrorPath(in dataDirectory: String) -> String {
        // The directory itself, whatever path names it (a symlink, `..`), once it exists.
        var absolute = URL(fileURLWithPath: dataDirectory).standardizedFileURL.path
        if let real = realpath(dataDirectory, nil) {
            absolute = String(cString: real)
            free(real)
        }
        let parent = DurableFiles.parent(of: absolute)
        let name = (absolute as NSString).lastPathComponent
        return (parent == "/" ? "" : parent) + "/." + name + ".tally-anchor"
    }

    /// `tally-anchor 1 <sequence, 20 digits> <hash, 64 hex>\n`: fixed length, so an in-place
    /// rewrite never leaves a longer old tail behind, and it fits one sector.
    func encoded() -> [UInt8] {
        let digits = String(sequence)
        let padded = String(repeating: "0", count: 20 - digits.count) + digits
        return Array("tally-anchor \(Self.formatVersion) \(padded) \(hash.hexString)\n".utf8)
    }

    static func decode(_ bytes: [UInt8]) -> Anchor? {
        guard let text = String(validating: bytes, as: UTF8.self) else { return nil }
        let parts = text.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "tally-anchor", parts[1] == "\(formatVersion)",
              let sequence = UInt64(parts[2]) else { return nil }
        let hex = Array(parts[3].utf8)
        guard hex.count == 2 * EventRecord.hashBytes + 1, hex.last == UInt8(ascii: "\n") else { return nil }
        var hash: [UInt8] = []
        for index in stride(from: 0, to: hex.count - 1, by: 2) {
            guard let byte = UInt8(String(decoding: hex[index...index + 1], as: UTF8.self), radix: 16) else { return nil }
            hash.append(byte)
        }
        return Anchor(sequence: sequence, hash: hash)
    }

    /// The anchor in `dataDirectory`, or nil when there is none.
    /// - Throws: `StorageError.corrupt` when the file exists but is not an anchor.
    public static func read(dataDirectory: String) throws(StorageError) -> Anchor? {
        try read(path: path(in: dataDirectory))
    }

    /// The anchor's copy beside `dataDirectory` (`mirrorPath`), or nil when there is none.
    public static func readMirror(dataDirectory: String) throws(StorageError) -> Anchor? {
        try read(path: mirrorPath(in: dataDirectory))
    }

    static func read(path: String) throws(StorageError) -> Anchor? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .corrupt("cannot read the anchor file \(path)")
        }
        guard let anchor = decode(Array(data)) else {
            throw .corrupt("the anchor file \(path) is damaged (\(data.count) bytes that are not an anchor). If you know the database is good (`tallyd replay --verify` reports no problem but this file), delete the file and start again: it is recreated at the log's head.")
        }
        return anchor
    }

    /// After a restore: writes both, and if the copy beside the directory cannot be written (a
    /// full disk), removes it, since a copy left at the old state would make the next start refuse
    /// the restored database as a rollback. A start writes the copy again.
    /// - Throws: `StorageError.corrupt` when the anchor cannot be written or a stale copy stays.
    func writeAfterRestore(dataDirectory: String) throws(StorageError) {
        guard try !write(dataDirectory: dataDirectory) else { return }
        let mirror = Self.mirrorPath(in: dataDirectory)
        // On a read-only file system unlink fails with EROFS also when there is no file to remove.
        guard unlink(mirror) != 0 else { return }
        let error = errno
        var status = stat()
        if error != ENOENT, lstat(mirror, &status) == 0 {
            throw .unusable("the database was restored, but the anchor's copy \(mirror) could be neither rewritten nor removed (\(String(cString: strerror(error)))): delete it by hand before starting tallyd, or the start refuses the restored database as a rollback")
        }
    }

    /// Replaces the anchor in `dataDirectory` atomically and durably (a temporary file, fsync,
    /// rename, fsync of the directory), then its copy beside it, best-effort. Used when the anchor
    /// is created and by restore.
    /// - Returns: whether the copy beside the data directory was written too.
    /// - Throws: `StorageError.unusable` carrying the I/O failure (the anchor is then unchanged).
    @discardableResult
    public func write(dataDirectory: String) throws(StorageError) -> Bool {
        let path = Self.path(in: dataDirectory)
        do {
            try DurableFiles.writeAtomically(encoded(), to: path)
        } catch {
            throw .unusable("cannot write the anchor \(path): \(error)")
        }
        do {
            try DurableFiles.writeAtomically(encoded(), to: Self.mirrorPath(in: dataDirectory))
            return true
        } catch {
            return false
        }
    }
}

/// Keeps the anchor file (and its copy beside the data directory, when it could be written) open
/// and rewrites them in place after each commit (one `pwrite` each, before the group's replies).
/// Every `syncIntervalCommits` the files are fsynced by a thread of their own, so no command
/// waits for those syncs (a reply that did was the slowest of its few hundred neighbours); the
/// anchor may lag after a power loss either way, which the start-up check allows. Called only from
/// the writer thread, and from `sync()` after the writer stopped.
final class AnchorWriter: @unchecked Sendable {
    private struct File {
        let fd: Int32
        let path: String
        var failed = false
    }

    private var files: [File] = []
    private var unsynced = 0
    private let onFailure: @Sendable (String) -> Void
    private var syncer: FileSyncer?

    /// Writes `anchor` atomically as the files' new content and opens them for updates. The copy
    /// beside the data directory is best-effort: `noCopy` hears at start when there can be none
    /// (a read-only or full parent directory), `onFailure` when an update fails later.
    init(dataDirectory: String, anchor: Anchor, noCopy: (String) -> Void, onFailure: @escaping @Sendable (String) -> Void) throws(StorageError) {
        let mirrored = try anchor.write(dataDirectory: dataDirectory)
        self.onFailure = onFailure
        var paths = [Anchor.path(in: dataDirectory)]
        if mirrored {
            paths.append(Anchor.mirrorPath(in: dataDirectory))
        } else {
            noCopy("cannot write the anchor's copy \(Anchor.mirrorPath(in: dataDirectory)) (the parent directory is read-only or full): a rollback of the whole data directory, anchor included, will not be detected")
        }
        for (index, path) in paths.enumerated() {
            let fd = open(path, O_WRONLY | O_CLOEXEC)
            if fd >= 0 {
                files.append(File(fd: fd, path: path))
            } else if index == 0 {
                throw .corrupt("cannot open the anchor \(path): \(String(cString: strerror(errno)))")
            } else {
                onFailure("cannot open the anchor's copy \(path): \(String(cString: strerror(errno)))")
            }
        }
        syncer = FileSyncer(descriptors: files.map(\.fd))
    }

    deinit {
        syncer?.stop()
        for file in files { close(file.fd) }
    }

    func update(_ anchor: Anchor) {
        let bytes = anchor.encoded()
        unsynced += 1
        let sync = unsynced >= Anchor.syncIntervalCommits
        if sync { unsynced = 0 }
        for index in files.indices where !files[index].failed {
            let written = bytes.withUnsafeBytes { pwrite(files[index].fd, $0.baseAddress, $0.count, 0) }
            guard written == bytes.count else {
                // The database is fine; only the rollback check loses precision until restart.
                files[index].failed = true
                onFailure("cannot update the anchor \(files[index].path): \(written < 0 ? String(cString: strerror(errno)) : "short write")")
                continue
            }
        }
        if sync { syncer?.request() }
    }

    /// Stops the syncing thread and fsyncs the files now (at shutdown, after the writer stopped).
    func sync() {
        syncer?.stop()
        syncer = nil
        for file in files { _ = fsync(file.fd) }
    }
}

/// A thread that fsyncs a few files when asked, so the asker does not wait for the disk. Requests
/// made while a sync runs are served by one more sync after it.
private final class FileSyncer: @unchecked Sendable {
    // @unchecked: `requested` and `stopping` are guarded by `condition`; `descriptors` is immutable.
    private let descriptors: [Int32]
    private let condition = NSCondition()
    private var requested = false
    private var stopping = false
    private var thread: JoinableThread?

    init(descriptors: [Int32]) {
        self.descriptors = descriptors
        thread = JoinableThread { [self] in run() }
    }

    func request() {
        condition.lock()
        requested = true
        condition.unlock()
        condition.signal()
    }

    /// Waits for a sync in progress, then for the thread to exit. Idempotent.
    func stop() {
        condition.lock()
        stopping = true
        condition.unlock()
        condition.signal()
        thread?.join()
        thread = nil
    }

    private func run() {
        while true {
            condition.lock()
            while !requested && !stopping { condition.wait() }
            let sync = requested
            requested = false
            let stop = stopping
            condition.unlock()
            if sync { for fd in descriptors { _ = fsync(fd) } }
            if stop { return }
        }
    }
}

/// File helpers for the few files Tally writes itself (anchor, snapshots, restore journal).
enum DurableFiles {
    struct Failure: Error, CustomStringConvertible {
        let description: String
        /// The failure was writing the copy, not reading the original (a full disk, say).
        var isDestination = false
        init(_ description: String, isDestination: Bool = false) {
            self.description = description
            self.isDestination = isDestination
        }
        static func errno(_ what: String, destination: Bool = false) -> Failure {
            Failure("\(what): \(String(cString: strerror(Glibc.errno)))", isDestination: destination)
        }
    }

    /// Writes `bytes` to `path` via `path.tmp`, fsyncs the file, renames, fsyncs the directory.
    static func writeAtomically(_ bytes: [UInt8], to path: String, mode: mode_t = 0o600) throws(Failure) {
        let temporary = path + ".tmp"
        var renamed = false
        // A failed write (a full disk) leaves no temporary file behind.
        defer { if !renamed { unlink(temporary) } }
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw .errno("open \(temporary)") }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                let failure = Failure.errno("write \(temporary)")
                close(fd)
                throw failure
            }
            offset += n
        }
        guard fsync(fd) == 0 else {
            let failure = Failure.errno("fsync \(temporary)")
            close(fd)
            throw failure
        }
        close(fd)
        guard rename(temporary, path) == 0 else { throw .errno("rename \(temporary) to \(path)") }
        renamed = true
        try syncDirectory(parent(of: path))
    }

    static func syncDirectory(_ path: String) throws(Failure) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw .errno("open directory \(path)") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw .errno("fsync directory \(path)") }
    }

    /// The absolute path with symlinks, `.` and `..` resolved as far as it exists (a path still
    /// to be created resolves through its parent).
    static func resolved(_ path: String) -> String {
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        if let real = realpath(absolute, nil) {
            defer { free(real) }
            return String(cString: real)
        }
        let parent = parent(of: absolute)
        return parent == absolute ? absolute : (resolved(parent) as NSString).appendingPathComponent((absolute as NSString).lastPathComponent)
    }

    /// Whether `inner` is `outer` or lies inside it, once both are resolved.
    static func isWithin(_ inner: String, _ outer: String) -> Bool {
        let (a, b) = (resolved(inner), resolved(outer))
        return a == b || a.hasPrefix(b.hasSuffix("/") ? b : b + "/")
    }

    static func parent(of path: String) -> String {
        let parent = (path as NSString).deletingLastPathComponent
        return parent.isEmpty ? "." : parent
    }

    static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }
}
