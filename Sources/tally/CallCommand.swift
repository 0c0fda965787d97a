import ArgumentParser
import TallyClient
import TallyProtocol

/// `tally call`: any method with any params, for everything the other commands do not cover.
struct CallCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "call",
        abstract: "Call any RPC method and print its result as JSON.",
        discussion: """
            Example: tally call getCreditBalance '{"customerId": "acme"}'
            On an RPC error prints `error CODE REASON: message` to stderr and exits 1.
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The method name, e.g. getStatus.")
    var method: String

    @Argument(help: ArgumentHelp("The params as a JSON object (default {}); - reads them from stdin.", valueName: "json"))
    var params: String?

    func validate() throws {
        // Parse here too (stdin aside) so a bad argument is reported with this command's usage.
        if let params, params != "-" { _ = try Self.parse(Array(params.utf8)) }
    }

    func run() throws {
        let object: JSONObject
        do {
            object = try Self.parse(params == "-" ? Console.readStandardInput() : Array((params ?? "{}").utf8))
        } catch let error as ValidationError {
            Console.error("error: \(error.message)")
            throw ExitCode.validationFailure
        }
        let context = TallyCommandContext(global)
        try context.run { connection in
            let result: JSONValue
            do {
                result = try connection.call(method, object)
            } catch let error as RPCError {
                var line = "error \(error.code)"
                if let reason = error.reason { line += " \(reason)" }
                line += ": \(error.message)"
                if let field = error.field { line += " (field \(field))" }
                Console.error(line)
                throw ExitCode(1)
            }
            Console.out(context.json ? result.jsonText : Display.pretty(result))
        }
    }

    private static func parse(_ bytes: [UInt8]) throws -> JSONObject {
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes)
        } catch {
            throw ValidationError("params are not valid JSON: \(error)")
        }
        guard let object = value.objectValue else {
            throw ValidationError("params must be a JSON object, got \(value.typeName).")
        }
        return object
    }
}
