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
        let bar = ProgressBar(label: "verify+copy", unit: "bytes")
        let replayBar = ProgressBar(label: "replay", unit: "events")
        var replayStarted = false
        do {
            // Not a snapshot: say so before the data directory is created or locked.
            _ = try SnapshotManifest.read(snapshot: from)
            let (verification, old) = try OfflineDataDirectory.whileLocked(dataDir) {
                try Snapshots.restore(
                    from: from, dataDirectory: dataDir, logger: logger, progress: { bar.update($0, of: $1) },
                    replayProgress: { done, total in
                        if !replayStarted { replayStarted = true; bar.finish(total, of: total) }
                        replayBar.update(done, of: total)
                    })
            }
            if replayStarted {
                replayBar.finish(verification.report?.eventsRead ?? 0, of: verification.manifest.sequence)
            } else {
                bar.finish(verification.bytesChecked, of: verification.manifest.sizeBytes)
            }
            guard verification.isValid else {
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
}
