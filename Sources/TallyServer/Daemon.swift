import Foundation
public import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import UnixSignals
import TallyCore
public import TallyEngine
import TallyProtocol
#if canImport(Glibc)
import Glibc
#endif

/// tallyd: the ledger behind a Unix socket, from start to a clean stop.
public enum Daemon {
    /// Starts the daemon and runs until SIGTERM or SIGINT, then stops accepting, finishes and syncs
    /// what is in flight, removes the socket and returns.
    /// - Throws: `StartupError` when it cannot start (data dir held, socket in use, corrupt ledger).
    public static func run(_ configuration: DaemonConfiguration, logger: Logger, clock: any LedgerClock = SystemClock()) async throws {
        if let problem = configuration.limits.validate() { throw StartupError("invalid limits: \(problem)") }
        // Crash-only: SIGABRT ends the process. Swift's crash backtracer catches it, and after an
        // outside `kill -ABRT` (no faulting instruction to return to) it printed "Program crashed"
        // and let the daemon go on serving. librocksdb's own abort() ended the process either way.
        signal(SIGABRT, SIG_DFL)
        let dataDirectory = configuration.dataDirectory
        let lock = try DataDirectoryLock(dataDirectory: dataDirectory)
        let socketPath = configuration.resolvedSocketPath
        try SocketPath.prepare(socketPath, dataDirectory: dataDirectory)

        let ledger: Ledger
        do {
            ledger = try Ledger(dataDirectory: dataDirectory, clock: clock, limits: configuration.limits.ledgerLimits, logger: logger)
        } catch {
            throw StartupError("cannot open the ledger in \(dataDirectory): \(error)")
        }
        // Expiries missed while stopped are appended now, in time order; then as they fall due.
        let expiry = ExpiryTimer(ledger: ledger, logger: logger)
        expiry.tick()
        expiry.start()
        let registry = ConnectionRegistry()
        let dispatcher = Dispatcher(
            ledger: ledger,
            limits: configuration.limits,
            info: .init(dataDirectory: dataDirectory, socketPath: socketPath, startedAt: clock.now(), pid: getpid()),
            connections: registry,
            logger: logger,
            extraMethods: (clock as? AdjustableClock).map { TestClockMethods.methods(clock: $0, expiry: expiry) } ?? [:]
        )
        if clock is AdjustableClock { logger.warning("test clock enabled: debug.setClock moves the ledger's time") }
        let server = SocketServer(dispatcher: dispatcher, registry: registry, socketPath: socketPath, logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: server)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        ))
        defer {
            expiry.stop()
            ledger.shutdown()
            // Memtables to SST files, so the next start has no WAL to replay. Not needed for
            // durability: every acknowledged batch is already synced in the WAL.
            do {
                try ledger.flushMemtables()
            } catch {
                logger.warning("flush at shutdown failed; the next start replays the WAL", metadata: ["error": "\(error)"])
            }
            logger.info("tallyd stopped", metadata: ["lastSequence": "\(ledger.head.sequence)"])
            withExtendedLifetime(lock) {}
        }
        try await group.run()
        logger.info("tallyd stopping: writer and expiry timer", metadata: ["lastSequence": "\(ledger.head.sequence)"])
    }
}

/// The listening socket as a lifecycle service.
struct SocketServer: Service {
    let dispatcher: Dispatcher
    let registry: ConnectionRegistry
    let socketPath: String
    let logger: Logger

    func run() async throws {
        let limits = dispatcher.limits
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.autoRead, value: true)
            // Not writable past this many bytes of unsent replies: ConnectionHandler then stops reading.
            .childChannelOption(.writeBufferWaterMark, value: ChannelOptions.Types.WriteBufferWaterMark(low: limits.pendingReplyBytesMax / 2, high: limits.pendingReplyBytesMax))
            .childChannelInitializer { [dispatcher, registry, logger] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        IdleStateHandler(allTimeout: .seconds(Int64(limits.idleTimeoutSeconds))),
                        ByteToMessageHandler(LineFrameDecoder(frameBytesMax: limits.frameBytesMax)),
                        ConnectionHandler(dispatcher: dispatcher, registry: registry, logger: logger),
                    ])
                }
            }
        // The socket is created 0600: no moment exists in which another user could connect.
        let previousMask = umask(0o177)
        let channel: any Channel
        do {
            channel = try await bootstrap.bind(unixDomainSocketPath: socketPath, cleanupExistingSocketFile: false).get()
            umask(previousMask)
        } catch {
            umask(previousMask)
            throw StartupError("cannot listen on \(socketPath): \(error)")
        }
        chmod(socketPath, 0o600)
        CloseOnExec.markSockets()
        logger.info("tallyd listening", metadata: [
            "socket": "\(socketPath)",
            "dataDir": "\(dispatcher.info.dataDirectory)",
            "lastSequence": "\(dispatcher.ledger.head.sequence)",
            "version": "\(TallyVersion.current)",
        ])
        try await withGracefulShutdownHandler {
            try await channel.closeFuture.get()
        } onGracefulShutdown: {
            logger.info("shutting down: no new connections; finishing in-flight commands")
            channel.close(promise: nil)
        }
        // No new connections now. Finish and sync what is queued, let each connection write its
        // replies, then close it.
        dispatcher.ledger.shutdown()
        let open = registry.all
        for connection in open {
            connection.pipeline.fireUserInboundEventTriggered(DrainAndClose())
        }
        let deadline = ContinuousClock.now.advanced(by: .seconds(5))
        while registry.count > 0, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        for connection in registry.all { try? await connection.close() }
        unlink(socketPath)
    }
}

/// `debug.setClock {now}`: only with `tallyd serve --test-clock`, for tests that move time.
enum TestClockMethods {
    static func methods(clock: AdjustableClock, expiry: ExpiryTimer) -> [String: Dispatcher.Method] {
        [
            "debug.setClock": .slowQuery { _, params in
                var p = Params(params)
                guard let now = try p.optionalTimestamp("now") else { throw RPCFailure.invalidParams(field: "now", "is required") }
                try p.finish()
                clock.set(now)
                // Activate and expire what the new time makes due before answering, so tests need not wait for a tick.
                expiry.tick()
                return .object(["now": .string(now.rfc3339)])
            },
        ]
    }
}

/// NIO opens its sockets without close-on-exec, so a child process would inherit them: on a crash
/// the Swift runtime spawns `swift-backtrace`, which then kept the listening socket (and every
/// client's) open after tallyd died, so no restart could listen and clients hung. `markSockets`
/// sets FD_CLOEXEC on every socket of the process: after listening, and on each new connection.
enum CloseOnExec {
    static func markSockets() {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return }
        var target = [CChar](repeating: 0, count: 64)
        for name in names {
            guard let fd = Int32(name), fd > 2 else { continue }
            let length = readlink("/proc/self/fd/\(name)", &target, target.count - 1)
            guard length > 7, String(decoding: target[0..<7].map { UInt8(bitPattern: $0) }, as: UTF8.self) == "socket:" else { continue }
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0, flags & FD_CLOEXEC == 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
        }
    }
}
