import Foundation
import TallyClient
import TallyProtocol
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A real full disk: the data directory on a small tmpfs (mounting needs root, as CI has).
enum SmallDisk {
    /// Whether this process may mount a tmpfs (probed once).
    static let canMount: Bool = {
        let probe = TemporaryDirectory("tally-mount-probe")
        guard (try? runProgram("/bin/mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", probe.path]))?.status == 0 else { return false }
        _ = try? runProgram("/bin/umount", [probe.path])
        return true
    }()
}

@Suite("disk full through the real daemon", .serialized)
struct DiskFullTests {
    static let eventsPerBatch = 500

    static func batch(_ number: Int) -> JSONValue {
        .array((0..<eventsPerBatch).map { i in
            usageEvent("acme", "call", key: "b\(number)-e\(i)", dimensions: ["region": "r\(i % 7)", "pad": String(repeating: "x", count: 100)])
        })
    }

    @Test("a full disk fails writes with 2001 (outcome unknown) while reads go on; after freeing space and a restart every acknowledged event is there once, and retries with the same keys apply the rest once",
          .enabled(if: SmallDisk.canMount, "mounting a tmpfs needs root"))
    func diskFull() throws {
        // A full disk fails the WAL append (tallyd answers 2001) or a background flush; Debian's
        // librocksdb, built with assertions, may then abort the process (on a later write or
        // sync). Which happens first depends on timing, so two fill levels; every way must end
        // in an exact recovery.
        for fillerMB in [14, 11] { try Self.fillDisk(leaving: 24 - fillerMB, fillerMB: fillerMB) }
    }

    @Test("tally events send on a disk that fills stops at the first 2001: the calls in flight are answered, the rest of the file is not sent; resent after space is freed, every event counts once",
          .enabled(if: SmallDisk.canMount, "mounting a tmpfs needs root"))
    func eventsSendStopsOnFullDisk() throws {
        let disk = TemporaryDirectory("tally-small-send")
        let mounted = try runProgram("/bin/mount", ["-t", "tmpfs", "-o", "size=48m", "tmpfs", disk.path])
        try #require(mounted.status == 0, "\(mounted.stderr)")
        defer { _ = try? runProgram("/bin/umount", ["-l", disk.path]) }
        let filler = disk.path + "/filler"
        try Data(count: 42 << 20).write(to: URL(fileURLWithPath: filler))
        chmod(disk.path, 0o700)
        let daemon = try LiveDaemon(dataDirectory: disk.path + "/data").start()
        _ = try daemon.call("provisionCustomer", ["customerId": "acme"])
        _ = try daemon.call("defineFeature", ["featureId": "calls", "type": "METERED", "meter": ["eventName": "call", "aggregation": "COUNT"]])
        // Far more than the 6 MB left take: the disk fills early in the file (and the 48 MB
        // freed hold them all).
        let total = 40_000
        let files = TemporaryDirectory("tally-send-file")
        let file = files.path + "/events.jsonl"
        var text = ""
        for i in 0..<total {
            text += usageEvent("acme", "call", key: "s-\(i)", dimensions: ["region": "r\(i % 7)", "pad": String(repeating: "x", count: 100)]).jsonText + "\n"
        }
        try Data(text.utf8).write(to: URL(fileURLWithPath: file))
        let send = ["events", "send", file, "--json", "--batch", "500", "--pipeline", "4", "--socket", daemon.socketPath]
        let first = try runProgram(Binaries.tally, send, timeoutSeconds: 300)
        let status = daemon.process?.wait(timeoutSeconds: 1)
        if status == nil {
            // The daemon answered 2001 and kept serving: the send stopped there.
            print("tally events send: stopped at 2001 after line \((try? JSONParser.parse(Array(first.stdout.utf8)))?.field("stopped.afterLine")?.jsonText ?? "?")")
            #expect(first.status == 1, "\(first.status): \(first.stderr)")
            #expect(first.stderr.contains("the daemon cannot write") && first.stderr.contains("Resend the file"), "\(first.stderr)")
            let summary = try JSONParser.parse(Array(first.stdout.utf8))
            let accepted = summary["accepted"]?.intValue ?? -1, failed = summary["failed"]?.intValue ?? -1
            let afterLine = summary.field("stopped.afterLine")?.intValue ?? -1
            #expect(summary.field("stopped.code") == 2001, "\(summary.jsonText.prefix(800))")
            // At most the calls in flight when the first refusal came failed; nothing after them went.
            #expect(failed > 0 && failed <= 4 * 500, "\(summary.jsonText.prefix(800))")
            #expect(accepted + failed == afterLine && afterLine < total, "\(summary.jsonText.prefix(800))")
            _ = try daemon.terminate()
        } else {
            // Debian's librocksdb aborted on the full disk first: the send ends as a lost connection.
            print("tally events send: tallyd aborted on the full disk (status \(status!)) before answering 2001; the stop is not exercised this run")
            #expect(first.status == 2, "\(first.status): \(first.stderr)")
        }
        try FileManager.default.removeItem(atPath: filler)
        try daemon.start()
        let again = try runProgram(Binaries.tally, send, timeoutSeconds: 300)
        #expect(again.status == 0, "\(again.status): \(again.stderr)")
        let summary = try JSONParser.parse(Array(again.stdout.utf8))
        #expect((summary["accepted"]?.intValue ?? 0) + (summary["duplicates"]?.intValue ?? 0) == total, "\(summary.jsonText.prefix(600))")
        let history = try daemon.history("acme", "calls", start: "2000-01-01T00:00:00Z", ["granularity": "MONTH"])
        #expect(history["series"]?.arrayValue?.first?["eventCount"]?.intValue == total)
        #expect(try daemon.terminate() == 0)
    }

    @Test("snapshot verify with too little room for its trial copy says so, and does not call a good snapshot bad",
          .enabled(if: SmallDisk.canMount, "mounting a tmpfs needs root"))
    func verifyWithoutRoom() throws {
        let daemon = try LiveDaemon().start()
        for i in 0..<200 { _ = try daemon.call("provisionCustomer", ["customerId": .string("room-\(i)"), "name": .string(String(repeating: "n", count: 500))]) }
        let snapshots = TemporaryDirectory("tally-room-snap")
        let snapshot = snapshots.path + "/snap"
        _ = try daemon.call("createSnapshot", ["path": .string(snapshot)])
        #expect(try daemon.terminate() == 0)
        let disk = TemporaryDirectory("tally-room-disk")
        let mounted = try runProgram("/bin/mount", ["-t", "tmpfs", "-o", "size=16k", "tmpfs", disk.path])
        try #require(mounted.status == 0, "\(mounted.stderr)")
        defer { _ = try? runProgram("/bin/umount", ["-l", disk.path]) }
        let cramped = try runProgram(Binaries.tally, ["snapshot", "verify", snapshot, "--scratch", disk.path])
        #expect(cramped.status == 2, "not checked, which is neither good (0) nor bad (1): \(cramped)")
        let text = cramped.stdout + cramped.stderr
        #expect(text.contains("not found at fault") && text.contains("free space"), "\(text)")
        #expect(!text.contains("cannot be trusted"), "a good snapshot was called bad: \(text)")
        let roomy = try runProgram(Binaries.tally, ["snapshot", "verify", snapshot])
        #expect(roomy.status == 0, "\(roomy)")
    }

    static func fillDisk(leaving freeMB: Int, fillerMB: Int) throws {
        let disk = TemporaryDirectory("tally-small")
        let mounted = try runProgram("/bin/mount", ["-t", "tmpfs", "-o", "size=24m", "tmpfs", disk.path])
        try #require(mounted.status == 0, "\(mounted.stderr)")
        defer { _ = try? runProgram("/bin/umount", ["-l", disk.path]) }
        let filler = disk.path + "/filler"
        try Data(count: fillerMB << 20).write(to: URL(fileURLWithPath: filler))
        chmod(disk.path, 0o700)

        let daemon = try LiveDaemon(dataDirectory: disk.path + "/data").start()
        _ = try daemon.call("provisionCustomer", ["customerId": "acme"])
        _ = try daemon.call("defineFeature", ["featureId": "calls", "type": "METERED", "meter": ["eventName": "call", "aggregation": "COUNT"]])
        let connection = try daemon.connect()
        var acknowledged = 0, failed: [Int] = [], sent = 0, died = false
        for number in 0..<400 where failed.count < 3 && !died {
            sent = number + 1
            do {
                let result = try connection.call("reportEvent", ["events": batch(number)])
                #expect(result["accepted"]?.intValue == eventsPerBatch, "\(result.jsonText.prefix(300))")
                acknowledged += 1
            } catch let error as RPCError {
                #expect(error.code == 2001 && error.message.contains("outcome is unknown") && error.message.contains("No space left"), "\(error)")
                failed.append(number)
            } catch {
                // Debian's librocksdb aborts on some I/O errors (a background flush on a full
                // disk): crash-only, the batch in flight has an unknown outcome.
                failed.append(number)
                let status = daemon.process?.wait(timeoutSeconds: 10)
                died = status != nil
                #expect(died, "the connection closed but tallyd is still running: \(error)")
                // RocksDB's abort, not a trap of ours (a precondition would be SIGILL or SIGTRAP).
                #expect(status == nil || status == 128 + SIGABRT, "tallyd died with status \(status ?? -1):\n\(daemon.log.suffix(3000))")
            }
        }
        print("disk full with \(freeMB) MB free: \(acknowledged) batches acknowledged, \(failed.count) failed, tallyd \(died ? "aborted (librocksdb)" : "kept serving")")
        #expect(!failed.isEmpty, "the disk never filled: \(acknowledged) batches acknowledged")
        #expect(acknowledged > 0)
        if !died {
            // Reads go on.
            #expect(try connection.call("getCustomer", ["customerId": "acme"])["id"] == "acme")
        }
        connection.close()

        // Free space, restart: recovery is exact.
        try FileManager.default.removeItem(atPath: filler)
        if !died { _ = try daemon.terminate() }
        try daemon.start()
        let history = try daemon.history("acme", "calls", start: "2000-01-01T00:00:00Z", ["granularity": "MONTH"])
        let recovered = history["series"]?.arrayValue?.first?["eventCount"]?.intValue ?? 0
        // Every acknowledged batch is there, whole; a failed one is there only if the daemon died
        // with it in flight (its outcome was unknown), and then whole too.
        let inFlightAtDeath = died ? 1 : 0
        #expect(recovered % eventsPerBatch == 0, "batches are atomic: \(recovered) events")
        #expect(recovered >= acknowledged * eventsPerBatch && recovered <= (acknowledged + inFlightAtDeath) * eventsPerBatch,
                "\(recovered) events after the restart, \(acknowledged) batches acknowledged, died: \(died)")
        let report = try daemon.call("verifyLedger")
        #expect(report["hashChainValid"] == true && report["projectionsMatch"] == true, "\(report.jsonText.prefix(500))")

        // The client resolves "outcome unknown" by retrying everything with the same keys.
        let retry = try daemon.connect()
        var accepted = 0, duplicates = 0
        for number in 0..<sent {
            let result = try retry.call("reportEvent", ["events": batch(number)])
            accepted += result["accepted"]?.intValue ?? 0
            duplicates += result["duplicates"]?.intValue ?? 0
        }
        retry.close()
        #expect(duplicates == recovered && accepted == sent * eventsPerBatch - recovered, "accepted \(accepted), duplicates \(duplicates), \(recovered) recovered")
        let after = try daemon.history("acme", "calls", start: "2000-01-01T00:00:00Z", ["granularity": "MONTH"])
        #expect(after["series"]?.arrayValue?.first?["eventCount"]?.intValue == sent * eventsPerBatch)
        #expect(try daemon.terminate() == 0)
    }
}
