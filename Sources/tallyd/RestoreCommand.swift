import ArgumentParser
import Foundation
import Logging
import TallyEngine
import TallyServer

/// `tallyd restore`: replaces a (stopped) data directory's database with a verified snapshot.
struct Restore: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Replace the data directory's database with a snapshot (the daemon must be stopped).",
        discussion: """
            Verifies the snapshot first (every file's checksum, a read-only replay of a copy, the \
            hash chain and the head) and installs exactly the verified copy: the old database is \
            kept as db.old-<time>. Refuses while a daemon holds the data directory. An interrupted \
            restore leaves the old or the new state, never a mix; the next start or restore \
            finishes or undoes it.
            Exit status: 0 restored; 1 the snapshot failed verification or the restore failed \
            (nothing changed unless said otherwise); 64 bad usage.
            """)

    @Option(name: .long, help: "The snapshot directory (made by createSnapshot / tally snapshot create).")
    var from: String

    @Option(name: .long, help: "Data directory.")
    var dataDir: String = "./tally-data"

    func run() throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .notice
            return handler
        }
        let logger = Logger(label: "tallyd")
        let progress = SnapshotCheckProgress(filesLabel: "verify+copy")
        // A data directory this restore creates (with any parents it creates) is removed again if
        // nothing is installed in it.
        let created = Self.firstMissing(dataDir)
        do {
            // Not a snapshot: say so before the data directory is created or locked.
            _ = try SnapshotManifest.read(snapshot: from)
            try Snapshots.refuseOverlap(snapshot: from, dataDirectory: dataDir)
            let (verification, old): (SnapshotVerification, String?)
            do {
                (verification, old) = try OfflineDataDirectory.whileLocked(dataDir) {
                    try Snapshots.restore(
                        from: from, dataDirectory: dataDir, logger: logger, progress: progress.file, replayProgress: progress.replay)
                }
            } catch {
                if let created { Self.removeCreated(dataDir, upTo: created) }
                throw error
            }
            progress.finish(
                bytesChecked: verification.bytesChecked, bytesTotal: verification.manifest.sizeBytes,
                eventsRead: verification.report?.eventsRead ?? 0, eventsTotal: verification.manifest.sequence)
            guard verification.isValid else {
                if let created { Self.removeCreated(dataDir, upTo: created) }
                for problem in verification.problems { printError("PROBLEM: \(problem)") }
                printError("tallyd restore: the snapshot \(from) failed verification; nothing was changed. Use another snapshot.")
                throw ExitCode(1)
            }
            print("restored \(dataDir) from \(from): sequence \(verification.manifest.sequence), head hash \(verification.manifest.headHash)")
            if let old { print("the previous database was kept as \(old); remove it once the restored daemon runs well") }
        } catch let error as ExitCode {
            throw error
        } catch {
            printError("tallyd restore: \(error)")
            throw ExitCode(1)
        }
    }

    /// The highest directory of `path` (itself or a parent) that does not exist yet, if any.
    static func firstMissing(_ path: String) -> String? {
        var missing: String?
        var current = URL(fileURLWithPath: path).standardizedFileURL
        while !FileManager.default.fileExists(atPath: current.path) {
            missing = current.path
            let parent = current.deletingLastPathComponent()
            guard parent.path != current.path else { break }
            current = parent
        }
        return missing
    }

    /// Removes what this restore made — the data directory and the parents it created up to
    /// `top` — if it holds nothing but its lock file (and each parent nothing but the way down).
    static func removeCreated(_ dataDirectory: String, upTo top: String) {
        var current = URL(fileURLWithPath: dataDirectory).standardizedFileURL
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: current.path),
              Set(entries).isSubset(of: ["tallyd.lock"]) else { return }
        while current.path != top {
            let parent = current.deletingLastPathComponent()
            guard parent.path != current.path, (try? FileManager.default.contentsOfDirectory(atPath: parent.path)) == [current.lastPathComponent] else { break }
            current = parent
        }
        try? FileManager.default.removeItem(atPath: current.path)
    }
}
