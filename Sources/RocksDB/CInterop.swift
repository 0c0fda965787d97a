import CRocksDB

/// Turns a filled-in `errptr` into a `RocksDBError`.
///
/// The C string is copied and then released with `rocksdb_free`, because RocksDB
/// allocated it (strdup inside the library) and only the library may free it.
/// Every call site passes a fresh `nil` slot, so a non-nil value always means this call failed.
func throwIfError(_ operation: String, _ errorPointer: UnsafeMutablePointer<CChar>?) throws(RocksDBError) {
    guard let errorPointer else { return }
    let message = String(cString: errorPointer)
    rocksdb_free(errorPointer)
    throw RocksDBError(operation: operation, message: message)
}

/// Passes `bytes` as the `(const char*, size_t)` pair RocksDB expects.
///
/// An empty Swift array may have a nil base address, and several C entry points
/// treat a nil pointer as "no key / unbounded" rather than "the empty key", so an
/// empty input is given a valid (zero-length) pointer instead.
func withCBytes<R>(_ bytes: [UInt8], _ body: (UnsafePointer<CChar>, Int) -> R) -> R {
    bytes.withUnsafeBytes { raw in
        if let base = raw.baseAddress, raw.count > 0 {
            return body(base.assumingMemoryBound(to: CChar.self), raw.count)
        }
        let zero: CChar = 0
        return withUnsafePointer(to: zero) { body($0, 0) }
    }
}

/// A NUL-terminated heap copy of `string`, for C arrays of names that must
/// outlive a single `withCString` scope. The caller deallocates it.
func makeCString(_ string: String) -> UnsafeMutablePointer<CChar> {
    let utf8 = Array(string.utf8)
    let pointer = UnsafeMutablePointer<CChar>.allocate(capacity: utf8.count + 1)
    for (index, byte) in utf8.enumerated() {
        pointer[index] = CChar(bitPattern: byte)
    }
    pointer[utf8.count] = 0
    return pointer
}

/// Copies a malloc'ed, NUL-terminated string returned by RocksDB and frees it with `rocksdb_free`.
func takeCString(_ pointer: UnsafeMutablePointer<CChar>?) -> String? {
    guard let pointer else { return nil }
    defer { rocksdb_free(pointer) }
    return String(cString: pointer)
}

/// Copies `count` bytes at `pointer` into a Swift array (empty when the pointer is nil).
func copyBytes(_ pointer: UnsafePointer<CChar>?, count: Int) -> [UInt8] {
    guard let pointer, count > 0 else { return [] }
    return Array(UnsafeRawBufferPointer(start: pointer, count: count))
}

/// A heap copy of a key that RocksDB keeps pointing into after the call returns
/// (iterate bounds: `ReadOptions` stores a `Slice`, not a copy). Freed by its owner.
struct PinnedBytes {
    let pointer: UnsafeMutablePointer<CChar>
    let count: Int

    init(_ bytes: [UInt8]) {
        // Allocate at least one byte so the pointer is never nil/dangling for an empty bound.
        pointer = .allocate(capacity: max(bytes.count, 1))
        count = bytes.count
        bytes.withUnsafeBytes { raw in
            if let base = raw.baseAddress, raw.count > 0 {
                UnsafeMutableRawPointer(pointer).copyMemory(from: base, byteCount: raw.count)
            }
        }
    }

    func deallocate() { pointer.deallocate() }
}
