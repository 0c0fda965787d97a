import ArgumentParser
import TallyClient
import TallyProtocol

/// What a subcommand needs from the global options: where the daemon is, how to print.
///
/// `run` owns the connection and the error policy, so a subcommand's `run()` is just
/// `try context.run { connection in … context.output(result) { …table… } }`.
struct TallyCommandContext {
    let socketPath: String
    let json: Bool
    let timeoutSeconds: Int

    init(_ options: GlobalOptions) {
        socketPath = SocketPath.resolve(
            flag: options.socket,
            environment: Console.environment(SocketPath.environmentKey).map { [SocketPath.environmentKey: $0] } ?? [:])
        json = options.json
        timeoutSeconds = options.timeout ?? GlobalOptions.timeoutDefault
    }

    /// Opens a connection to the daemon.
    ///
    /// - Throws: ``ClientError/connectFailed(path:errno:hint:)`` when it cannot be reached.
    func connect() throws(ClientError) -> TallyConnection {
        try TallyConnection(socketPath: socketPath, timeoutSeconds: timeoutSeconds)
    }

    /// Runs `body` on a fresh connection and maps failures to messages and exit codes:
    /// an ``RPCError`` prints `error: <message> (code <code>, <reason>)` and exits 1; a
    /// ``ClientError`` prints what went wrong (with a hint when the daemon is unreachable) and
    /// exits 2. Other errors (validation, `ExitCode`) pass through to ArgumentParser.
    func run(_ body: (TallyConnection) throws -> Void) throws {
        do {
            let connection = try connect()
            defer { connection.close() }
            try body(connection)
        } catch let error as RPCError {
            Console.error("error: \(error)")
            throw ExitCode(1)
        } catch let error as ClientError {
            report(error)
            throw ExitCode(2)
        }
    }

    /// A read that survives the daemon closing an idle connection (`idleTimeoutSeconds`; a
    /// follower may wait longer than that between polls): on `closed`, or a write to a closed
    /// socket, it connects again and asks once more. Reads change nothing, so asking twice is safe.
    func read(_ method: String, _ params: JSONObject, on connection: inout TallyConnection) throws -> JSONValue {
        do {
            return try connection.call(method, params)
        } catch let error as ClientError {
            switch error {
            case .closed, .io:
                connection.close()
                connection = try connect()
                return try connection.call(method, params)
            case .connectFailed, .protocolViolation:
                throw error
            }
        }
    }

    /// Prints `result` as one compact JSON value with `--json`, else what `human` renders.
    func output(_ result: JSONValue, human: () -> String) {
        if json {
            Console.out(result.jsonText)
        } else {
            Console.out(human())
        }
    }

    /// Prints a transport failure for a person.
    func report(_ error: ClientError) {
        switch error {
        case .connectFailed(let path, let errno, let hint):
            Console.error(
                """
                error: cannot connect to tallyd at \(path): \(Console.describe(errno: errno))
                hint: \(hint)
                      (the socket is --socket PATH, else $\(SocketPath.environmentKey), else \(SocketPath.defaultPath))
                """)
        case .closed:
            Console.error("error: tallyd closed the connection (socket \(socketPath))")
        case .io, .protocolViolation:
            Console.error("error: \(error)")
        }
    }}
