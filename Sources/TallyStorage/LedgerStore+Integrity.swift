public import RocksDB
import TallyCore

extension LedgerStore {
    /// Reads and decodes every idempotency record as of `snapshot`, so a damaged block or record
    /// in that column family is found by a verification (replay does not read it otherwise).
    /// Returns how many records were read; `body` is called with each record's key.
    /// - Throws: `StorageError.rocksDB` (e.g. a block checksum mismatch) or `.corrupt` when a record does not decode.
    public func checkIdempotencyRecords(snapshot: Snapshot?, _ body: ([UInt8]) -> Void = { _ in }) throws(StorageError) -> Int {
        let iterator = database.makeIterator(in: idempotency, snapshot: snapshot)
        iterator.seekToFirst()
        var count = 0
        while iterator.isValid {
            do {
                _ = try IdempotencyRecord.decode(iterator.value)
            } catch {
                throw .corrupt("idempotency record \(iterator.key.hexString): \(error.reason)")
            }
            body(iterator.key)
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

    /// Reads every record of the column families a verification does not otherwise read whole —
    /// the meta family (the projection mark, read only by key) and the projections including the
    /// records a rebuild's range deletion hides — so a damaged block in them (a bit flipped in an
    /// SST block of older records, which a later compaction would hit and then refuse every
    /// write) is found now. The log and the idempotency records are read whole elsewhere.
    /// - Throws: `StorageError.rocksDB` (a block checksum mismatch, a missing file).
    public func checkEveryBlock(snapshot: Snapshot?) throws(StorageError) {
        for family in [meta, projections] {
            let iterator = database.makeCheckingIterator(in: family, snapshot: snapshot)
            iterator.seekToFirst()
            while iterator.isValid { iterator.next() }
            do {
                try iterator.check()
            } catch {
                throw .rocksDB(error)
            }
        }
    }
}
