import Foundation
public import Logging
import Yams

/// How tallyd runs: defaults, then the config file, then command-line flags.
public struct DaemonConfiguration: Sendable {
    public static let defaultDataDirectory = "./tally-data"
    public static let socketFileName = "tallyd.sock"

    public var dataDirectory: String
    /// nil = `<dataDirectory>/tallyd.sock`.
    public var socketPath: String?
    public var logLevel: Logger.Level
    public var limits: ServerLimits

    public init(dataDirectory: String = defaultDataDirectory, socketPath: String? = nil, logLevel: Logger.Level = .info, limits: ServerLimits = ServerLimits()) {
        self.dataDirectory = dataDirectory
        self.socketPath = socketPath
        self.logLevel = logLevel
        self.limits = limits
    }

    public var resolvedSocketPath: String { socketPath ?? dataDirectory + "/" + Self.socketFileName }

    /// A config file could not be used.
    public struct FileError: Error, CustomStringConvertible {
        public let path: String
        public let reason: String
        public var description: String { "config file \(path): \(reason)" }
    }

    /// Applies a YAML config file (see config/tallyd.example.yaml) over these values.
    /// - Throws: `FileError` for unreadable YAML, unknown keys, or values of the wrong type.
    public mutating func apply(configFile path: String) throws(FileError) {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw FileError(path: path, reason: "cannot be read (\(error.localizedDescription))")
        }
        try apply(yaml: text, path: path)
    }

    public mutating func apply(yaml text: String, path: String = "<string>") throws(FileError) {
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch {
            throw FileError(path: path, reason: "is not valid YAML: \(error)")
        }
        guard let node else { return }
        guard let root = node.mapping else { throw FileError(path: path, reason: "must be a mapping of keys to values") }
        for (keyNode, value) in root {
            let key = keyNode.string ?? ""
            switch key {
            case "dataDir": dataDirectory = try string(value, key, path)
            case "socketPath":
                // `~` or `null` mean "the default, inside the data directory".
                socketPath = value.scalar.map { ["~", "null", "Null", "NULL"].contains($0.string) } == true ? nil : try string(value, key, path)
            case "logLevel":
                let text = try string(value, key, path)
                guard let level = Logger.Level(rawValue: text) else {
                    throw FileError(path: path, reason: "logLevel must be one of trace, debug, info, notice, warning, error, critical")
                }
                logLevel = level
            case "limits":
                guard let mapping = value.mapping else { throw FileError(path: path, reason: "limits must be a mapping") }
                for (limitKey, limitValue) in mapping {
                    let name = limitKey.string ?? ""
                    let int = try integer(limitValue, "limits.\(name)", path)
                    switch name {
                    case "frameBytesMax": limits.frameBytesMax = int
                    case "connectionsMax": limits.connectionsMax = int
                    case "idleTimeoutSeconds": limits.idleTimeoutSeconds = int
                    case "pipelinedLinesMax": limits.pipelinedLinesMax = int
                    case "batchRequestsMax": limits.batchRequestsMax = int
                    case "batchReplyBytesMax": limits.batchReplyBytesMax = int
                    case "pendingReplyBytesMax": limits.pendingReplyBytesMax = int
                    case "jsonDepthMax": limits.jsonDepthMax = int
                    case "groupCommandsMax": limits.groupCommandsMax = int
                    case "queuedCommandsMax": limits.queuedCommandsMax = int
                    default: throw FileError(path: path, reason: "unknown key limits.\(name)")
                    }
                }
            default:
                throw FileError(path: path, reason: "unknown key \(key)")
            }
        }
        // Named as in the file: every problem starts with the key.
        if let problem = limits.validate() { throw FileError(path: path, reason: "limits.\(problem)") }
    }

    private func string(_ node: Node, _ key: String, _ path: String) throws(FileError) -> String {
        guard let s = node.scalar?.string, !s.isEmpty else { throw FileError(path: path, reason: "\(key) must be a non-empty string") }
        return s
    }

    private func integer(_ node: Node, _ key: String, _ path: String) throws(FileError) -> Int {
        guard let s = node.scalar?.string, let int = Int(s) else { throw FileError(path: path, reason: "\(key) must be an integer") }
        return int
    }
}
