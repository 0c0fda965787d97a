import ArgumentParser
import Foundation
import TallyClient
import TallyProtocol

/// `tally snapshot create PATH`: the daemon's createSnapshot, with PATH made absolute here.
struct SnapshotCreateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Take a consistent snapshot while the daemon serves (a new directory at PATH).",
        discussion: "PATH must not exist, and its parent directory must; the daemon writes it, so it must be able to. Verify it with `tally snapshot verify PATH` before relying on it.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The snapshot directory to create.")
    var path: String

    func validate() throws {
        guard !path.isEmpty else { throw ValidationError("PATH must not be empty.") }
    }

    func run() throws {
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        let context = TallyCommandContext(global)
        // Flushing, checkpointing and copying a large database takes a while.
        let patient = TallyCommandContext(global.forLongRequest)
        try patient.run { connection in
            let result = try connection.call("createSnapshot", ["path": .string(absolute)])
            context.output(result) {
                TableFormatter.keyValue(Display.fields(result.objectValue ?? [:], leading: ["path", "sequence", "headHash", "sizeBytes", "files", "createdAt"]))
            }
        }
    }
}
