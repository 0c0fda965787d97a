import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The data directory's lock for offline tools (`tallyd restore`).
public enum OfflineDataDirectory {
    /// Runs `body` holding the data directory's lock. A running daemon holds it, so this refuses
    /// while one runs, and no daemon can start on the directory meanwhile.
    /// - Throws: `StartupError` when the lock is held ("another tallyd (pid N) is running…") or
    ///   the directory cannot be made; whatever `body` throws.
    public static func whileLocked<T>(_ dataDirectory: String, _ body: () throws -> T) throws -> T {
        let lock = try DataDirectoryLock(dataDirectory: dataDirectory)
        try refuseOpenDatabase(dataDirectory)
        return try withExtendedLifetime(lock) { try body() }
    }

    /// RocksDB's own lock on `db/LOCK` (a POSIX record lock) is held by any process that has the
    /// database open: a daemon still running after its `tallyd.lock` was deleted (a cleaner of
    /// temporary files, say) would otherwise have its database swapped under it.
    static func refuseOpenDatabase(_ dataDirectory: String) throws(StartupError) {
        let path = dataDirectory + "/db/LOCK"
        let fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return }  // no database yet
        defer { close(fd) }
        var lock = flock()
        lock.l_type = Int16(F_WRLCK)
        lock.l_whence = Int16(SEEK_SET)
        guard fcntl(fd, F_GETLK, &lock) == 0 else { return }
        guard lock.l_type == Int16(F_UNLCK) else {
            throw StartupError("the database in \(dataDirectory)/db is open in another process (pid \(lock.l_pid) holds its LOCK), although no tallyd holds \(dataDirectory)/tallyd.lock: stop that process first")
        }
    }
}
