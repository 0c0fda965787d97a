import ArgumentParser
import Foundation
import TallyEngine
import TallyProtocol
import TallyStorage

/// `tally snapshot verify PATH`: checks a snapshot where it lies, without a daemon: every file
/// against the manifest, then a read-only replay of a trial copy (hash chain, projections, head).
struct SnapshotVerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check a snapshot: file checksums, then a replay of a trial copy (needs no daemon).",
        discussion: "A snapshot is good only after this passes. Exit status: 0 good; 1 a problem was found (each is printed) or it is not a snapshot; 2 it could not be checked here (no room or no permission for the trial copy: the snapshot was not found at fault).")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The snapshot directory.")
    var path: String

    @Option(name: .long, help: ArgumentHelp("Where to put the trial copy (needs the snapshot's size free). Default: $TMPDIR or /tmp.", valueName: "dir"))
    var scratch: String?

    func validate() throws {
        // A --scratch that is no directory is bad usage (64), not a problem of the snapshot (1).
        if let scratch {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: scratch, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw ValidationError("--scratch \(scratch) is not a directory.")
            }
        }
    }

    func run() throws {
        let scratchDirectory = scratch ?? Console.environment("TMPDIR") ?? "/tmp"
        let progress = SnapshotCheckProgress(filesLabel: "verify")
        let result: SnapshotVerification
        do {
            result = try Snapshots.verify(at: path, scratchDirectory: scratchDirectory, progress: progress.file, replayProgress: progress.replay)
        } catch {
            if error.isCheckImpossible {
                // Neither good nor bad: `valid` is not claimed either way.
                if global.json {
                    Console.out(JSONValue.object(["path": .string(path), "valid": .null, "problems": [], "error": .string("\(error)")]).jsonText)
                } else {
                    Console.error("error: \(error)")
                }
                throw ExitCode(2)
            }
            if global.json {
                Console.out(JSONValue.object(["path": .string(path), "valid": false, "problems": .array([.string("\(error)")])]).jsonText)
            } else {
                Console.error("error: \(error)")
            }
            throw ExitCode(1)
        }
        progress.finish(
            bytesChecked: result.bytesChecked, bytesTotal: result.manifest.sizeBytes,
            eventsRead: result.report?.eventsRead ?? 0, eventsTotal: result.manifest.sequence)
        if global.json {
            var o: JSONObject = [
                "path": .string(path), "valid": .bool(result.isValid), "createdAt": .string(result.manifest.createdAt),
                "sequence": .integer(result.manifest.sequence), "headHash": .string(result.manifest.headHash),
                "filesChecked": .integer(result.filesChecked), "files": .integer(result.manifest.files.count),
                "bytesChecked": .integer(result.bytesChecked), "problems": .array(result.problems.map { .string($0) }),
            ]
            if let report = result.report {
                o["eventsReplayed"] = .integer(report.eventsRead)
                o["hashChainValid"] = .bool(report.hashChainValid)
                o["projections"] = .object(JSONObject(report.projectionCounts.sorted { $0.key < $1.key }.map { ($0.key, .integer(Int64($0.value))) }))
                o["idempotencyRecords"] = .integer(Int64(result.idempotencyRecords))
                if let older = report.olderLayoutVersion { o["olderLayoutVersion"] = .integer(Int64(older)) }
            }
            Console.out(JSONValue.object(o).jsonText)
            if !result.isValid { throw ExitCode(1) }
            return
        }
        var lines = [
            "snapshot: \(path)",
            "created: \(result.manifest.createdAt)",
            "sequence: \(result.manifest.sequence)",
            "head hash: \(result.manifest.headHash)",
            "files: \(result.filesChecked) of \(result.manifest.files.count) checked, \(result.bytesChecked) bytes",
        ]
        if let report = result.report {
            lines.append("events replayed: \(report.eventsRead); hash chain \(report.hashChainValid ? "valid" : "BROKEN")")
            for (name, count) in report.projectionCounts.sorted(by: { $0.key < $1.key }) { lines.append("projection \(name): \(count)") }
            if let note = report.olderLayoutNote { lines.append("projections: \(note)") }
            lines.append("idempotency records: \(result.idempotencyRecords)")
        }
        for problem in result.problems { lines.append("PROBLEM: \(problem)") }
        lines.append(result.isValid ? "OK: the snapshot is good." : "FAILED: the snapshot cannot be trusted; use another one.")
        Console.out(lines.joined(separator: "\n"))
        if !result.isValid { throw ExitCode(1) }
    }
}
