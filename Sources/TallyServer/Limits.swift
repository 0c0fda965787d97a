import TallyEngine

/// Every limit of the server in one place. Units last in names; relations checked by `validate()`.
public struct ServerLimits: Sendable, Equatable {
    /// Longest accepted request line, without its newline. Longer lines get -32700 with id null,
    /// then the connection closes.
    public var frameBytesMax = 1 << 20
    /// Open connections; the next one gets OVERLOADED and is closed.
    public var connectionsMax = 256
    /// A connection with nothing in flight and no bytes for this long is closed.
    public var idleTimeoutSeconds = 300
    /// Lines in flight per connection before the server stops reading from it (back-pressure).
    public var pipelinedLinesMax = 1024
    /// Requests in one batch array.
    public var batchRequestsMax = 10_000
    /// Bytes of one batch's reply: past them, reads in the batch get OVERLOADED instead of their
    /// result (commands always get theirs).
    public var batchReplyBytesMax = 16 << 20
    /// Bytes of replies waiting for a client that does not read them before the server stops
    /// reading its connection (the channel's high write-buffer water mark).
    public var pendingReplyBytesMax = 4 << 20
    /// JSON nesting (arrays and objects) accepted in a request.
    public var jsonDepthMax = 64
    /// Commands committed in one synced WriteBatch.
    public var groupCommandsMax = 4096
    /// Commands waiting for the writer before OVERLOADED.
    public var queuedCommandsMax = 100_000

    public init() {}

    /// Why these limits cannot work together, or nil.
    public func validate() -> String? {
        if frameBytesMax < 1024 { return "frameBytesMax must be at least 1024" }
        if connectionsMax < 1 { return "connectionsMax must be at least 1" }
        if idleTimeoutSeconds < 1 { return "idleTimeoutSeconds must be at least 1" }
        if pipelinedLinesMax < 1 { return "pipelinedLinesMax must be at least 1" }
        if batchRequestsMax < 1 { return "batchRequestsMax must be at least 1" }
        if batchReplyBytesMax < 1024 { return "batchReplyBytesMax must be at least 1024" }
        if pendingReplyBytesMax < 1024 { return "pendingReplyBytesMax must be at least 1024" }
        if !(2...512).contains(jsonDepthMax) { return "jsonDepthMax must be from 2 to 512" }
        if groupCommandsMax < 1 { return "groupCommandsMax must be at least 1" }
        // One full batch must fit the writer's queue, or a legal request could never be taken whole.
        if queuedCommandsMax < batchRequestsMax { return "queuedCommandsMax must be at least batchRequestsMax" }
        return nil
    }

    var ledgerLimits: Ledger.Limits {
        var limits = Ledger.Limits()
        limits.groupCommandsMax = groupCommandsMax
        limits.queuedCommandsMax = queuedCommandsMax
        return limits
    }
}
