import Foundation
import RocksDB
public import TallyCore
public import TallyStorage
#if canImport(Glibc)
import Glibc
#endif

/// What a snapshot directory holds besides RocksDB's files: `manifest.json`, written last.
public struct SnapshotManifest: Codable, Sendable, Equatable {
    public static let fileName = "manifest.json"
    /// 2 added `manifestSha256`. Version 1 manifests (without it) are still read.
    public static let currentFormatVersion = 2
    static let readableFormatVersions = 1...currentFormatVersion

    public struct File: Codable, Sendable, Equatable {
        public var name: String
        public var size: UInt64
        /// Lowercase hex SHA-256 of the file's bytes.
        public var sha256: String
    }

    public var formatVersion: Int
    /// The last event the snapshot holds (0 for an empty ledger) and its hash.
    public var sequence: UInt64
    public var headHash: String
    /// RFC 3339, UTC.
    public var createdAt: String
    /// Every file of the snapshot except the manifest, by name.
    public var files: [File]
    /// Lowercase hex SHA-256 of this manifest encoded without this field: the files' checksums
    /// cover the files, this covers the manifest itself (a flipped digit in `createdAt` is valid
    /// JSON, and would otherwise pass). Nil only in version 1 manifests.
    public var manifestSha256: String?

    /// The files' sizes summed; saturates instead of trapping on a manifest with absurd sizes
    /// (those files then fail their size check).
    public var sizeBytes: UInt64 {
        files.reduce(0) { total, file in
            let (sum, overflow) = total.addingReportingOverflow(file.size)
            return overflow ? .max : sum
        }
    }

    func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return Array(try encoder.encode(self)) + [UInt8(ascii: "\n")]
    }

    /// The SHA-256 (hex) of the manifest's encoding with `manifestSha256` left out.
    public func contentDigest() throws -> String {
        var content = self
        content.manifestSha256 = nil
        var hasher = StreamingSHA256()
        try content.encoded().withUnsafeBytes { hasher.update($0) }
        return hasher.finalize().hexString
    }

    /// Reads `<snapshot>/manifest.json`.
    /// - Throws: `SnapshotError` when it is missing, unreadable, or not a manifest this build reads.
    public static func read(snapshot path: String) throws(SnapshotError) -> SnapshotManifest {
        let manifestPath = path + "/" + fileName
        guard let data = FileManager.default.contents(atPath: manifestPath) else {
            var isDirectory: ObjCBool = false
            if !FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
                throw SnapshotError("\(path) does not exist")
            }
            if !isDirectory.boolValue { throw SnapshotError("\(path) is a file, not a snapshot directory") }
            throw SnapshotError("\(path) is not a snapshot: \(fileName) is missing or unreadable (a snapshot whose manifest was never written is incomplete; take a new one)")
        }
        let manifest: SnapshotManifest
        do {
            manifest = try JSONDecoder().decode(SnapshotManifest.self, from: data)
        } catch {
            throw SnapshotError("the manifest \(manifestPath) is damaged (\(error)); the snapshot cannot be trusted — use another one")
        }
        guard readableFormatVersions.contains(manifest.formatVersion) else {
            throw SnapshotError("the snapshot \(path) has format version \(manifest.formatVersion), which this tallyd does not read (it reads \(readableFormatVersions.lowerBound) to \(readableFormatVersions.upperBound)): a newer tallyd wrote it, or its manifest is damaged")
        }
        // Present: it must match (even in a version-1 manifest: a flipped bit can turn a 2 into a 1).
        if let recorded = manifest.manifestSha256 {
            let actual: String
            do {
                actual = try manifest.contentDigest()
            } catch {
                throw SnapshotError("the manifest \(manifestPath) cannot be re-encoded to check it (\(error))")
            }
            guard actual == recorded else {
                throw SnapshotError("the manifest \(manifestPath) is damaged: its SHA-256 \(actual) differs from the \(recorded) it records; the snapshot cannot be trusted — use another one")
            }
        } else if manifest.formatVersion >= 2 {
            throw SnapshotError("the manifest \(manifestPath) is damaged: manifestSha256 is missing; the snapshot cannot be trusted — use another one")
        }
        var names = Set<String>()
        for file in manifest.files where !names.insert(file.name).inserted {
            throw SnapshotError("the manifest \(manifestPath) lists \(file.name) twice; the snapshot cannot be trusted — use another one")
        }
        return manifest
    }
}

/// A snapshot could not be taken, read or restored. The message says what to do.
public struct SnapshotError: Error, Sendable, CustomStringConvertible {
    public let message: String
    /// The path asked for cannot be used (it exists, its parent does not, it is inside the data
    /// directory): the caller's to change, not a failure to retry.
    public let isPathRefused: Bool
    /// The check could not be made here (no room or no permission for its trial copy): the
    /// snapshot was not found at fault.
    public let isCheckImpossible: Bool
    public init(_ message: String, isPathRefused: Bool = false, isCheckImpossible: Bool = false) {
        self.message = message
        self.isPathRefused = isPathRefused
        self.isCheckImpossible = isCheckImpossible
    }

    /// Whether a failed `mkdir` in a directory the caller chose is the caller's to change (no
    /// permission, a read-only or pseudo file system, no such place) rather than a disk failing.
    static func isPathProblem(errno code: Int32) -> Bool {
        [EACCES, EPERM, EROFS, ENOENT, ENOTDIR, ENAMETOOLONG, ELOOP].contains(code)
    }
    public var description: String { message }
}

/// Progress of a long operation: units done so far and the total (0 when unknown).
public typealias ProgressHandler = (_ done: UInt64, _ total: UInt64) -> Void

/// Online snapshots: a RocksDB checkpoint turned into an independent, checksummed directory.
public enum Snapshots {
    /// Takes a consistent snapshot of `store` at `path` while writes go on.
    ///
    /// A RocksDB checkpoint (memtables flushed first) is made in a temporary directory beside
    /// `path`; its files are hard links into the live database, so each is *copied* (and fsynced)
    /// into a second temporary directory, which gets `manifest.json` last and is then renamed to
    /// `path`. The manifest's sequence and head hash are read from the checkpoint itself, opened
    /// read-only: exactly what the snapshot holds. A crash leaves at most a hidden temporary
    /// directory beside `path`, never a `path` without a manifest.
    /// - Throws: `SnapshotError` when `path` exists, its parent is missing, or any step fails.
    public static func create(store: LedgerStore, at path: String, now: Timestamp) throws(SnapshotError) -> SnapshotManifest {
        // Resolved (".", "..", symlinks) as the kernel will: "s1/../s1y" is beside s1, not in it.
        let target = DurableFiles.resolved(absolute(path))
        let parent = DurableFiles.parent(of: target)
        let name = (target as NSString).lastPathComponent
        guard !DurableFiles.exists(target) else { throw SnapshotError("\(target) already exists; choose a new path for each snapshot", isPathRefused: true) }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: parent, isDirectory: &isDirectory) else {
            throw SnapshotError("\(target): the directory \(parent) does not exist; create it first", isPathRefused: true)
        }
        guard isDirectory.boolValue else {
            throw SnapshotError("\(target): \(parent) is a file, not a directory; choose a path in a directory", isPathRefused: true)
        }
        // A snapshot holds only its own files: one made inside another would make that one fail
        // its verification.
        var ancestor = parent
        while true {
            // (A manifest.json of some other tool is no snapshot.)
            if DurableFiles.exists(ancestor + "/" + SnapshotManifest.fileName), (try? SnapshotManifest.read(snapshot: ancestor)) != nil {
                throw SnapshotError("\(target) is inside the snapshot \(ancestor), which would then no longer verify; choose a path outside it", isPathRefused: true)
            }
            let up = DurableFiles.parent(of: ancestor)
            if up == ancestor || up == "." { break }
            ancestor = up
        }
        let tag = "\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        // The checkpoint's files are hard links to the live database's: made inside a directory
        // only the owner may enter (RocksDB makes the checkpoint's own with the umask's mode), so
        // they are no more readable there, or after a crash left it, than in the data directory.
        let holder = parent + "/.\(name).checkpoint-\(tag)"
        let checkpoint = holder + "/db"
        let staging = parent + "/.\(name).tmp-\(tag)"
        defer {
            try? FileManager.default.removeItem(atPath: holder)
            try? FileManager.default.removeItem(atPath: staging)
        }
        guard mkdir(holder, 0o700) == 0 else {
            let code = errno
            throw SnapshotError("cannot create \(holder): \(String(cString: strerror(code)))", isPathRefused: SnapshotError.isPathProblem(errno: code))
        }
        do {
            try store.database.createCheckpoint(at: checkpoint)
        } catch {
            // A damaged block met while flushing or linking: no snapshot will be good until restored.
            let advice = error.kind == .corruption ? " The database is damaged: \(Recovery.restoreAdvice)" : ""
            throw SnapshotError("cannot create a RocksDB checkpoint in \(parent): \(error).\(advice)")
        }
        let head: (sequence: UInt64, hash: [UInt8])
        do {
            let copy = try LedgerStore(path: checkpoint, readOnly: true)
            let last = try copy.lastEvent()
            head = (last?.event.sequence ?? 0, last?.hash ?? EventRecord.genesisHash)
        } catch {
            throw SnapshotError("cannot read the checkpoint back: \(error)")
        }
        guard mkdir(staging, 0o700) == 0 else { throw SnapshotError("cannot create \(staging): \(String(cString: strerror(errno)))") }
        var files: [SnapshotManifest.File] = []
        do {
            for file in try SnapshotFiles.list(checkpoint) {
                let (size, digest) = try SnapshotFiles.copy(from: checkpoint + "/" + file, to: staging + "/" + file)
                files.append(.init(name: file, size: size, sha256: digest.hexString))
            }
            var manifest = SnapshotManifest(
                formatVersion: SnapshotManifest.currentFormatVersion, sequence: head.sequence, headHash: head.hash.hexString,
                createdAt: now.rfc3339, files: files)
            manifest.manifestSha256 = try manifest.contentDigest()
            try DurableFiles.writeAtomically(try manifest.encoded(), to: staging + "/" + SnapshotManifest.fileName)
            try DurableFiles.syncDirectory(staging)
            guard rename(staging, target) == 0 else {
                // Another snapshot to the same path finished first.
                if errno == EEXIST || errno == ENOTEMPTY { throw SnapshotError("\(target) already exists (it was made while this snapshot was taken); choose a new path for each snapshot", isPathRefused: true) }
                throw DurableFiles.Failure.errno("rename \(staging) to \(target)")
            }
            try DurableFiles.syncDirectory(parent)
            return manifest
        } catch let error as SnapshotError {
            throw error
        } catch {
            throw SnapshotError("cannot write the snapshot \(target): \(error)")
        }
    }

    static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }
}

extension Ledger {
    /// A consistent snapshot at `path` while writes go on; see `Snapshots.create`.
    /// - Throws: `SnapshotError`.
    public func createSnapshot(at path: String) throws(SnapshotError) -> SnapshotManifest {
        // Inside the data directory, a snapshot would be lost with it (and restore replaces db/).
        guard !DurableFiles.isWithin(DurableFiles.parent(of: Snapshots.absolute(path)), dataDirectory) else {
            throw SnapshotError("\(path) is inside the data directory \(DurableFiles.resolved(dataDirectory)): a snapshot there would not survive its loss; choose a path on another disk or at least outside it", isPathRefused: true)
        }
        return try Snapshots.create(store: store, at: path, now: now)
    }
}

extension Snapshots {
    /// A restore's data directory must not be the snapshot, inside it, or hold it: the restore
    /// writes its lock and its copy into the data directory, which would change the snapshot it
    /// verifies.
    /// - Throws: `SnapshotError` saying so.
    public static func refuseOverlap(snapshot: String, dataDirectory: String) throws(SnapshotError) {
        guard !DurableFiles.isWithin(dataDirectory, snapshot), !DurableFiles.isWithin(snapshot, dataDirectory) else {
            throw SnapshotError("--data-dir \(dataDirectory) and the snapshot \(snapshot) overlap (\(DurableFiles.resolved(dataDirectory)), \(DurableFiles.resolved(snapshot))): restore into a data directory outside the snapshot; nothing was changed")
        }
    }
}

/// Copying files with their SHA-256, for snapshots and restores.
enum SnapshotFiles {
    static let chunkBytes = 1 << 20

    /// The regular files in `directory`, sorted. A subdirectory or other file type is an error:
    /// RocksDB's checkpoints are flat.
    static func list(_ directory: String) throws(DurableFiles.Failure) -> [String] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw DurableFiles.Failure("cannot list \(directory): \(error.localizedDescription)")
        }
        for name in names {
            var info = stat()
            guard lstat(directory + "/" + name, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
                throw DurableFiles.Failure("\(directory)/\(name) is not a regular file")
            }
        }
        return names.sorted()
    }

    /// Copies `source` to the new file `destination` (mode 0600), fsyncs it, and returns the size
    /// and SHA-256 of the bytes copied. `progress` gets the bytes of each chunk.
    static func copy(from source: String, to destination: String, progress: ((UInt64) -> Void)? = nil) throws(DurableFiles.Failure) -> (UInt64, [UInt8]) {
        let input = open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw .errno("open \(source)") }
        defer { close(input) }
        let output = open(destination, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard output >= 0 else { throw .errno("create \(destination)", destination: true) }
        defer { close(output) }
        var hasher = StreamingSHA256()
        var size: UInt64 = 0
        var buffer = [UInt8](repeating: 0, count: chunkBytes)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .errno("read \(source)")
            }
            if n == 0 { break }
            let failed = buffer.withUnsafeBytes { raw -> Bool in
                let chunk = UnsafeRawBufferPointer(rebasing: raw[0..<n])
                hasher.update(chunk)
                var offset = 0
                while offset < n {
                    let written = write(output, chunk.baseAddress! + offset, n - offset)
                    if written < 0 {
                        if errno == EINTR { continue }
                        return true
                    }
                    offset += written
                }
                return false
            }
            if failed { throw .errno("write \(destination)", destination: true) }
            size += UInt64(n)
            progress?(UInt64(n))
        }
        guard fsync(output) == 0 else { throw .errno("fsync \(destination)", destination: true) }
        return (size, hasher.finalize())
    }
}
