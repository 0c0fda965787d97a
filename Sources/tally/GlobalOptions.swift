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

    @Option(name: .long, help: ArgumentHelp("Seconds a request may wait for the daemon.", valueName: "seconds"))
    var timeout: Int = 30

    mutating func validate() throws {
        guard timeout > 0 else { throw ValidationError("--timeout must be at least 1 second.") }
    }
}
