import CRocksDB

/// Identity shared by a `Database` and the objects derived from it, so a
/// `ColumnFamily` or `WriteBatch` from one database cannot silently be applied to
/// another (RocksDB would interpret the column-family id against the wrong db).
/// A class instance rather than `ObjectIdentifier` so a freed database's
/// address being reused can never make a stale handle look valid.
final class OwnerToken: Sendable {}

/// A column family opened by a `Database`.
///
/// The underlying `rocksdb_column_family_handle_t` is owned by the `Database`,
/// which destroys every handle before `rocksdb_close` (RocksDB requires that
/// order). A `ColumnFamily` does not keep its database open; it is only usable
/// through the `Database` that returned it, and every `Database` method checks
/// that (a precondition), so a handle that outlived its database is never dereferenced.
///
/// `@unchecked Sendable`: the stored properties are immutable, and RocksDB's
/// column-family handles may be used concurrently from any thread.
public final class ColumnFamily: @unchecked Sendable {
    /// The column family's name as given to RocksDB.
    public let name: String
    let raw: OpaquePointer
    let owner: OwnerToken

    init(name: String, raw: OpaquePointer, owner: OwnerToken) {
        self.name = name
        self.raw = raw
        self.owner = owner
    }
}
