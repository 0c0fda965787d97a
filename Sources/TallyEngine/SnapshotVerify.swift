import Foundation
import TallyStorage
#if canImport(Glibc)
import Glibc
#endif

/// The outcome of checking a snapshot. It is good only when `problems` is empty.
public struct SnapshotVerification: Sendable {
    public var manifest: SnapshotManifest
    public var filesChecked: Int
    public var bytesChecked: UInt64
    /// The replay of the trial copy; nil when the files already failed their checksums.
    public var report: VerificationReport?
    public var idempotencyRecords: Int
    /// Every finding, each saying what is wrong: a file that differs from the manifest, a chain
    /// break, a projection mismatch, a head that is not the manifest's.
    public var problems: [String]

    public var isValid: Bool { problems.isEmpty }
}

extension Snapshots {
    /// Checks the snapshot at `path`: every file against the manifest (size and SHA-256, no file
    /// missing or extra), then a trial copy in `scratchDirectory` opened read-only, replayed
    /// (hash chain and every projection), its idempotency records read, and its head compared
    /// with the manifest's. The trial copy is removed afterwards. The snapshot itself is only read.
    /// - Throws: `SnapshotError` when it is not a snapshot (no or damaged manifest) or the scratch
    ///   copy cannot be made.
    /// `progress` follows the copy (bytes), `replayProgress` the trial replay (events).
    public static func verify(at path: String, scratchDirectory: String, progress: ProgressHandler? = nil, replayProgress: ProgressHandler? = nil) throws(SnapshotError) -> SnapshotVerification {
        let trial = scratchDirectory + "/.tally-verify-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: trial) }
        return try verify(at: path, into: trial, progress: progress, replayProgress: replayProgress)
    }

    /// The same check, leaving the verified copy at `trial` (which must not exist): restore
    /// installs exactly the bytes it checked.
    static func verify(at path: String, into trial: String, progress: ProgressHandler?, replayProgress: ProgressHandler?) throws(SnapshotError) -> SnapshotVerification {
        let source = absolute(path)
        let manifest = try SnapshotManifest.read(snapshot: source)
        var result = SnapshotVerification(manifest: manifest, filesChecked: 0, bytesChecked: 0, report: nil, idempotencyRecords: 0, problems: [])
        let present: [String]
        do {
            present = try SnapshotFiles.list(source)
        } catch {
            throw SnapshotError("cannot read the snapshot \(source): \(error)")
        }
        let expected = Dictionary(manifest.files.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        for name in present where name != SnapshotManifest.fileName && expected[name] == nil {
            result.problems.append("\(name): not in the manifest (a file was added to the snapshot)")
        }
        guard mkdir(trial, 0o700) == 0 else {
            throw SnapshotError("cannot create the trial directory \(trial): \(String(cString: strerror(errno))); the snapshot was not found at fault. Use another place for the trial copy, and run it again", isCheckImpossible: true)
        }
        let total = manifest.sizeBytes
        var done: UInt64 = 0
        for file in manifest.files {
            guard present.contains(file.name), !file.name.contains("/") else {
                result.problems.append("\(file.name): missing from the snapshot")
                continue
            }
            let copied: (UInt64, [UInt8])
            do {
                copied = try SnapshotFiles.copy(from: source + "/" + file.name, to: trial + "/" + file.name) { bytes in
                    done += bytes
                    progress?(done, total)
                }
            } catch where error.isDestination {
                // Not the snapshot's fault: the place the copy goes (full, read-only, failing).
                throw SnapshotError("cannot write the trial copy in \(trial) (\(error)); the snapshot was not found at fault. The copy needs \(total) bytes: free space there, or use another place, and run it again", isCheckImpossible: true)
            } catch {
                result.problems.append("\(file.name): cannot be read (\(error))")
                continue
            }
            result.filesChecked += 1
            result.bytesChecked += copied.0
            if copied.0 != file.size {
                result.problems.append("\(file.name): \(copied.0) bytes, the manifest says \(file.size) (truncated or extended)")
            } else if copied.1.hexString != file.sha256 {
                result.problems.append("\(file.name): SHA-256 \(copied.1.hexString) differs from the manifest's \(file.sha256) (the file is damaged)")
            }
        }
        guard result.problems.isEmpty else { return result }
        do {
            try DurableFiles.syncDirectory(trial)
            // Scoped so the database is closed before the caller removes or installs the copy.
            try replayTrial(trial, manifest: manifest, into: &result, progress: replayProgress)
        } catch {
            result.problems.append("the snapshot's database cannot be read: \(error)")
        }
        return result
    }

    private static func replayTrial(_ trial: String, manifest: SnapshotManifest, into result: inout SnapshotVerification, progress: ProgressHandler?) throws {
        let store = try LedgerStore(path: trial, readOnly: true)
        let report = try Replay.verify(store: store) { progress?($0, manifest.sequence) }
        result.report = report
        result.idempotencyRecords = report.idempotencyRecords
        if let problem = report.chainProblem { result.problems.append("hash chain: \(problem)") }
        for mismatch in report.mismatches { result.problems.append("projection mismatch: \(mismatch)") }
        if report.lastSequence != manifest.sequence || report.headHash.hexString != manifest.headHash {
            result.problems.append("the database ends at sequence \(report.lastSequence) (hash \(report.headHash.hexString)), the manifest says \(manifest.sequence) (hash \(manifest.headHash))")
        }
    }
}
