public import RocksDB
import TallyCore

extension LedgerStore {
    /// Reads and decodes every idempotency record as of `snapshot`, so a damaged block or record
    /// in that column family is found by a verification (replay does not read it otherwise).
    /// Returns how many records were read.
    /// - Throws: `StorageError.rocksDB` (e.g. a block checksum mismatch) or `.corrupt` when a record does not decode.
    public func checkIdempotencyRecords(snapshot: Snapshot?) throws(StorageError) -> Int {
        let iterator = database.makeIterator(in: idempotency, snapshot: snapshot)
        iterator.seekToFirst()
        var count = 0
        while iterator.isValid {
            do {
                _ = try IdempotencyRecord.decode(iterator.value)
            } catch {
                throw .corrupt("idempotency record \(iterator.key.hexString): \(error.reason)")
            }
            count += 1
            iterator.next()
        }
        do {
            try iterator.check()
        } catch {
            throw .rocksDB(error)
        }
        return count
    }
}
