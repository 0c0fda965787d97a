/// The OpenRPC document served by rpc.discover, kept as the file openrpc.json beside this one and
/// embedded into the binary at build time.
public enum OpenRPC {
    public static let document: JSONValue = {
        do {
            return try JSONParser.parse(PackageResources.openrpc_json, depthMax: 64)
        } catch {
            preconditionFailure("openrpc.json does not parse: \(error)")
        }
    }()

    /// The method names the document describes.
    public static var methodNames: [String] {
        (document["methods"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }.sorted()
    }
}

public enum TallyVersion {
    public static let current = "0.1.0"
}
