/// Where the daemon's socket is looked for, in one place so the CLI, tests and tools agree.
public enum SocketPath {
    /// The daemon's default: `<dataDir>/tallyd.sock` with the default data dir `./tally-data`.
    public static let defaultPath = "./tally-data/tallyd.sock"

    /// The environment variable naming the socket when no flag is given.
    public static let environmentKey = "TALLY_SOCKET"

    /// The `--socket` flag, then `TALLY_SOCKET`, then ``defaultPath``; empty values count as unset.
    public static func resolve(flag: String?, environment: [String: String]) -> String {
        if let flag, !flag.isEmpty { return flag }
        if let fromEnvironment = environment[environmentKey], !fromEnvironment.isEmpty { return fromEnvironment }
        return defaultPath
    }
}
