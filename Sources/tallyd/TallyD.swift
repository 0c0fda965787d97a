import ArgumentParser
import Foundation
import Logging
import TallyCore
import TallyEngine
import TallyServer

@main
struct TallyD: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tallyd",
        abstract: "Tally's ledger daemon: an append-only usage and credits ledger on a Unix socket.",
        version: "0.1.0",
        subcommands: [Serve.self, Replay.self, Restore.self],
        defaultSubcommand: Serve.self
    )

    /// Refuses an argument that is not UTF-8 (exit 64) before parsing: decoded, it would name
    /// another data directory or file than the one given.
    static func main() async {
        // Started with a standard stream closed (by a careless supervisor): its descriptor would
        // go to the database's or the socket's next file, and the logs into it.
        _ = StandardStreams.reopenClosed()
        if let finding = ProcessArguments.firstNotUTF8() {
            FileHandle.standardError.write(Data((ProcessArguments.notUTF8Message(finding) + "\n").utf8))
            Foundation.exit(64)
        }
        await main(nil)
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the daemon (the default command).",
        discussion: "Values come from the defaults, then --config, then the flags. Stop it with SIGTERM or Ctrl-C: it commits and answers the commands already queued for the writer (later ones, even pipelined on an open connection, get 2001: retry them with their keys), removes the socket and exits 0."
    )

    @Option(name: .long, help: "Data directory (created mode 0700). Default: ./tally-data")
    var dataDir: String?

    @Option(name: .long, help: "Unix socket path. Default: <data-dir>/tallyd.sock")
    var socket: String?

    @Option(name: .long, help: "YAML config file; see config/tallyd.example.yaml.")
    var config: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String?

    @Flag(name: .long, help: "For tests only: the ledger's clock stands still and moves with debug.setClock {now}.")
    var testClock = false

    @Option(name: .long, help: "With --test-clock: the clock's starting time (RFC 3339). Default: now.")
    var testClockStart: String?

    static let logLevelProblem = "--log-level must be one of trace, debug, info, notice, warning, error, critical"

    func validate() throws {
        // Here, not in run(): a refusal there would print the root command's usage.
        if let logLevel, Logger.Level(rawValue: logLevel) == nil { throw ValidationError(Self.logLevelProblem) }
        if testClockStart != nil && !testClock { throw ValidationError("--test-clock-start needs --test-clock (it sets that clock's starting time).") }
        if let text = testClockStart {
            do { _ = try Timestamp(parsingRFC3339: text) } catch { throw ValidationError("--test-clock-start: \(error)") }
        }
    }

    func run() async throws {
        var configuration = DaemonConfiguration()
        do {
            if let config { try configuration.apply(configFile: config) }
        } catch {
            // A bad config file is not a usage error: say what is wrong with it, without the usage text.
            FileHandle.standardError.write(Data("tallyd: \(error.description)\n".utf8))
            throw ExitCode(1)
        }
        if let dataDir { configuration.dataDirectory = dataDir }
        if let socket { configuration.socketPath = socket }
        if let logLevel {
            guard let level = Logger.Level(rawValue: logLevel) else { throw ValidationError(Self.logLevelProblem) }
            configuration.logLevel = level
        }
        let level = configuration.logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "tallyd")
        do {
            if testClock {
                var start: Timestamp?
                if let text = testClockStart {
                    do { start = try Timestamp(parsingRFC3339: text) } catch { throw ValidationError("--test-clock-start: \(error)") }
                }
                try await Daemon.run(configuration, logger: logger, clock: AdjustableClock(start: start ?? SystemClock().now()))
            } else {
                try await Daemon.run(configuration, logger: logger)
            }
        } catch let error as StartupError {
            logger.critical("tallyd cannot start: \(error.message)")
            fflush(nil)
            _exit(1)
        } catch {
            logger.critical("tallyd failed: \(error)")
            fflush(nil)
            _exit(1)
        }
        // Leave without running C++ static destructors: RocksDB's can race with a database handle
        // still being released on another thread. Everything acknowledged is synced already, and
        // the next start recovers exactly (crash-only).
        fflush(nil)  // every stdio stream; the log handler writes to stderr
        _exit(0)
    }
}
