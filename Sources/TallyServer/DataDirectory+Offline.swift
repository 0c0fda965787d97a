/// The data directory's lock for offline tools (`tallyd restore`).
public enum OfflineDataDirectory {
    /// Runs `body` holding the data directory's lock. A running daemon holds it, so this refuses
    /// while one runs, and no daemon can start on the directory meanwhile.
    /// - Throws: `StartupError` when the lock is held ("another tallyd (pid N) is running…") or
    ///   the directory cannot be made; whatever `body` throws.
    public static func whileLocked<T>(_ dataDirectory: String, _ body: () throws -> T) throws -> T {
        let lock = try DataDirectoryLock(dataDirectory: dataDirectory)
        return try withExtendedLifetime(lock) { try body() }
    }
}
