import Logging
import TallyEngine
import TallyProtocol

extension MethodTable {
    /// Operations on the data itself: online snapshots.
    static let operationsMethods: [String: Dispatcher.Method] = [
        // A heavy query: it flushes, checkpoints and copies every file, so it runs off the event
        // loops, on the heavy lane; it goes through no writer, and writes go on while it runs.
        "createSnapshot": .heavyQuery { dispatcher, params in
            var p = Params(params)
            let path = try p.requiredString("path")
            try p.finish()
            guard path.hasPrefix("/") else {
                throw RPCFailure.invalidParams(field: "path", "must be an absolute path (the daemon's working directory is not the caller's)")
            }
            guard !path.utf8.contains(0) else { throw RPCFailure.invalidParams(field: "path", "contains a NUL character, which no file name can hold") }
            // Linux's NAME_MAX and PATH_MAX, with room for the hidden work directory beside it.
            if let long = path.split(separator: "/").first(where: { $0.utf8.count > 200 }) {
                throw RPCFailure.invalidParams(field: "path", "has a component of \(long.utf8.count) bytes; at most 200 (a file name holds 255, and the snapshot's work directory adds to it)")
            }
            guard path.utf8.count <= 3800 else { throw RPCFailure.invalidParams(field: "path", "is \(path.utf8.count) bytes long; at most 3800") }
            let manifest: SnapshotManifest
            do {
                manifest = try dispatcher.ledger.createSnapshot(at: path)
            } catch let error as SnapshotError where error.isPathRefused {
                throw RPCFailure.invalidParams(field: "path", error.message)
            } catch {
                dispatcher.logger.error("createSnapshot failed", metadata: ["path": "\(path)", "error": "\(error)"])
                throw RPCFailure.storageUnavailable("cannot create the snapshot: \(error)")
            }
            dispatcher.logger.info("snapshot created", metadata: ["path": "\(path)", "sequence": "\(manifest.sequence)"])
            return .object(JSONObject([
                ("path", .string(path)),
                ("sequence", .integer(manifest.sequence)),
                ("headHash", .string(manifest.headHash)),
                ("sizeBytes", .integer(manifest.sizeBytes)),
                ("files", .integer(manifest.files.count)),
                ("createdAt", .string(manifest.createdAt)),
            ]))
        },
    ]
}
