import Foundation
import Testing
import TallyServer

/// config/tallyd.example.yaml must name every key tallyd accepts, each at its default, and the
/// loader must refuse what it does not understand.
@Suite("Configuration")
struct ConfigurationTests {
    /// `<repo>/config/tallyd.example.yaml`, found from this file's path.
    static let examplePath: String = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // TallyServerTests
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()  // repo root
        .appendingPathComponent("config/tallyd.example.yaml").path

    static let limitKeys = [
        "frameBytesMax", "connectionsMax", "idleTimeoutSeconds", "pipelinedLinesMax",
        "batchRequestsMax", "jsonDepthMax", "groupCommandsMax", "queuedCommandsMax",
    ]

    @Test("the example config loads and sets every value to its default")
    func exampleMatchesDefaults() throws {
        var configuration = DaemonConfiguration()
        // Start from values that differ from every default, so a key missing from the file fails.
        configuration.dataDirectory = "/nonexistent/elsewhere"
        configuration.socketPath = "/nonexistent/elsewhere.sock"
        configuration.logLevel = .critical
        configuration.limits.frameBytesMax = 4096
        configuration.limits.connectionsMax = 3
        configuration.limits.idleTimeoutSeconds = 7
        configuration.limits.pipelinedLinesMax = 11
        configuration.limits.batchRequestsMax = 13
        configuration.limits.jsonDepthMax = 17
        configuration.limits.groupCommandsMax = 19
        configuration.limits.queuedCommandsMax = 23

        try configuration.apply(configFile: Self.examplePath)

        let defaults = DaemonConfiguration()
        #expect(configuration.dataDirectory == DaemonConfiguration.defaultDataDirectory)
        #expect(configuration.dataDirectory == defaults.dataDirectory)
        #expect(configuration.resolvedSocketPath == defaults.resolvedSocketPath)
        #expect(configuration.resolvedSocketPath == "./tally-data/tallyd.sock")
        #expect(configuration.logLevel == defaults.logLevel)
        #expect(configuration.limits == ServerLimits())

        let limits = configuration.limits
        let expected = ServerLimits()
        #expect(limits.frameBytesMax == expected.frameBytesMax)
        #expect(limits.connectionsMax == expected.connectionsMax)
        #expect(limits.idleTimeoutSeconds == expected.idleTimeoutSeconds)
        #expect(limits.pipelinedLinesMax == expected.pipelinedLinesMax)
        #expect(limits.batchRequestsMax == expected.batchRequestsMax)
        #expect(limits.jsonDepthMax == expected.jsonDepthMax)
        #expect(limits.groupCommandsMax == expected.groupCommandsMax)
        #expect(limits.queuedCommandsMax == expected.queuedCommandsMax)
        #expect(limits.validate() == nil)
    }

    @Test("with the example config, a --data-dir given on the command line takes the socket with it")
    func exampleSocketFollowsDataDirectory() throws {
        var configuration = DaemonConfiguration()
        try configuration.apply(configFile: Self.examplePath)
        configuration.dataDirectory = "/srv/tally"  // as --data-dir sets it, after the file
        #expect(configuration.resolvedSocketPath == "/srv/tally/tallyd.sock")
    }

    @Test("the example config sets every key, each with a comment")
    func exampleMentionsEveryKey() throws {
        let text = try String(contentsOfFile: Self.examplePath, encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        for key in ["dataDir", "socketPath", "logLevel", "limits"] + Self.limitKeys {
            let index = lines.firstIndex { $0.trimmingCharacters(in: .whitespaces).hasPrefix(key + ":") }
            #expect(index != nil, "config/tallyd.example.yaml does not set \(key)")
            if let index {
                #expect(index > 0 && lines[index - 1].trimmingCharacters(in: .whitespaces).hasPrefix("#"), "\(key) has no comment above it")
            }
        }
    }

    @Test("an unknown top-level key is refused, naming it")
    func unknownKey() {
        let error = configError("dataDir: ./d\nsoketPath: ./x.sock\n")
        #expect(error?.reason.contains("unknown key soketPath") == true, "\(String(describing: error))")
    }

    @Test("an unknown limit is refused, naming it")
    func unknownLimit() {
        let error = configError("limits:\n  frameBytesMax: 2048\n  framesMax: 3\n")
        #expect(error?.reason.contains("limits.framesMax") == true, "\(String(describing: error))")
    }

    @Test("values of the wrong type are refused, naming the key", arguments: [
        ("limits:\n  connectionsMax: many\n", "limits.connectionsMax"),
        ("limits:\n  frameBytesMax: 1.5\n", "limits.frameBytesMax"),
        ("limits: 5\n", "limits"),
        ("dataDir: [a, b]\n", "dataDir"),
        ("socketPath: \"\"\n", "socketPath"),
        ("logLevel: loud\n", "logLevel"),
    ])
    func wrongType(yaml: String, key: String) {
        let error = configError(yaml)
        #expect(error?.reason.contains(key) == true, "\(String(describing: error))")
    }

    @Test("limits that cannot work together are refused, naming them as the file does", arguments: [
        ("limits:\n  queuedCommandsMax: 10\n  batchRequestsMax: 11\n", "limits.queuedCommandsMax"),
        ("limits:\n  frameBytesMax: 100\n", "limits.frameBytesMax"),
        ("limits:\n  jsonDepthMax: 1000\n", "limits.jsonDepthMax"),
        ("limits:\n  connectionsMax: 0\n", "limits.connectionsMax"),
        ("limits:\n  groupCommandsMax: 0\n", "limits.groupCommandsMax"),
    ])
    func invalidLimits(yaml: String, key: String) {
        let error = configError(yaml)
        #expect(error?.reason.contains(key) == true, "\(String(describing: error))")
    }

    @Test("invalid YAML and a non-mapping document are refused")
    func notAMapping() {
        #expect(configError("limits: [\n") != nil)
        #expect(configError("- a\n- b\n")?.reason.contains("mapping") == true)
    }

    @Test("a missing file is refused with its path")
    func missingFile() {
        var configuration = DaemonConfiguration()
        let path = "/nonexistent/tallyd-\(UUID().uuidString).yaml"
        #expect(throws: DaemonConfiguration.FileError.self) { try configuration.apply(configFile: path) }
        do {
            try configuration.apply(configFile: path)
        } catch {
            #expect(error.path == path)
            #expect(error.description.contains(path))
        }
    }

    @Test("a partial file changes only what it names")
    func partialFile() throws {
        var configuration = DaemonConfiguration()
        try configuration.apply(yaml: "dataDir: /var/lib/tally\nlimits:\n  connectionsMax: 8\n")
        #expect(configuration.dataDirectory == "/var/lib/tally")
        #expect(configuration.resolvedSocketPath == "/var/lib/tally/tallyd.sock")
        var expected = ServerLimits()
        expected.connectionsMax = 8
        #expect(configuration.limits == expected)
        #expect(configuration.logLevel == .info)
    }

    /// The FileError that applying `yaml` throws, or nil if it applies cleanly.
    private func configError(_ yaml: String) -> DaemonConfiguration.FileError? {
        var configuration = DaemonConfiguration()
        do {
            try configuration.apply(yaml: yaml, path: "test.yaml")
            return nil
        } catch {
            #expect(error.path == "test.yaml")
            return error
        }
    }
}
