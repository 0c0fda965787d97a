import Crypto

/// SHA-256 over data that arrives in pieces (a file read in chunks), for snapshot manifests.
public struct StreamingSHA256 {
    private var hasher = SHA256()

    public init() {}

    public mutating func update(_ bytes: UnsafeRawBufferPointer) { hasher.update(bufferPointer: bytes) }

    /// The digest of everything passed to `update`.
    public func finalize() -> [UInt8] { Array(hasher.finalize()) }
}
