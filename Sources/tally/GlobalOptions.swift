import ArgumentParser

/// Options every subcommand takes, through `@OptionGroup var global: GlobalOptions`.
struct GlobalOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "The daemon's socket (default: $TALLY_SOCKET, then ./tally-data/tallyd.sock).", valueName: "path"))
    var socket: String?

    @Flag(name: .long, help: "Print the raw result as JSON (one value), for scripts.")
    var json = false

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp(
        "Seconds a request may wait for the daemon (default: 30; 3600 for ledger verify and snapshot create, which read the whole ledger).",
        valueName: "seconds"))
    var timeout: Int?

    mutating func validate() throws {
        if let timeout, timeout < 1 { throw ValidationError("--timeout must be at least 1 second.") }
        // An empty path (an unset shell variable, say) must not quietly mean the default socket.
        if socket?.isEmpty == true { throw ValidationError("--socket must not be empty.") }
    }

    static let timeoutDefault = 30
    /// What the commands that read the whole ledger wait for when no --timeout is given.
    static let longTimeoutDefault = 3600

    /// These options with the long default when no --timeout was given.
    var forLongRequest: GlobalOptions {
        var options = self
        options.timeout = timeout ?? Self.longTimeoutDefault
        return options
    }
}
