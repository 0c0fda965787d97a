import Testing
import TallyProtocol

@Suite("JSON serializer")
struct JSONSerializerTests {
    @Test(arguments: [
        "null", "true", "false", "0", "-1.50e+10", #""""#, #""a\"b\\c""#, "[]", "{}",
        #"{"b":1,"a":[true,false,null,{"z":{},"y":[]}],"c":"é😀\u0000"}"#,
        #"[[[[[]]]],{"":""}]"#,
        #"{"id":"evt-1","amount":"12.50","n":12.50,"tags":["x","y"],"meta":{"k":-0}}"#,
    ])
    func roundTrips(_ text: String) throws {
        let v = try JSONParser.parse(text)
        let bytes = v.serialized()
        #expect(try JSONParser.parse(bytes) == v)
        // Compact input is reproduced byte for byte (escapes may be normalised, none here differ).
        #expect(try JSONParser.parse(v.jsonText).serialized() == bytes)
    }

    @Test func compactOutputKeepsInsertionOrderAndNumberText() throws {
        let v = try JSONParser.parse(" { \"z\" : 1.0 , \"a\" : [ 1e3 , -0 ] , \"m\" : null } ")
        #expect(v.jsonText == #"{"z":1.0,"a":[1e3,-0],"m":null}"#)
    }

    @Test func serializeIntoAppends() {
        var buffer = Array("prefix:".utf8)
        JSONValue.array([1, "x"]).serialize(into: &buffer)
        #expect(String(decoding: buffer, as: UTF8.self) == #"prefix:[1,"x"]"#)
    }

    @Test func escapesControlCharactersQuotesAndBackslashes() throws {
        let s = "\"\\/\n\r\t\u{8}\u{C}\u{0}\u{1}\u{1F}\u{7F} end"
        #expect(JSONValue.string(s).jsonText == #""\"\\/\n\r\t\b\f\u0000\u0001\u001f"# + "\u{7F} end\"")
        var all = ""
        for c in 0..<0x20 { all.unicodeScalars.append(Unicode.Scalar(UInt8(c))) }
        let v = JSONValue.string(all)
        #expect(v.jsonText.utf8.allSatisfy { $0 >= 0x20 })
        #expect(try JSONParser.parse(v.serialized()) == v)
    }

    @Test func escapesKeysToo() throws {
        let v: JSONValue = ["a\"b": 1, "c\nd": 2]
        #expect(v.jsonText == #"{"a\"b":1,"c\nd":2}"#)
        #expect(try JSONParser.parse(v.jsonText) == v)
    }

    @Test func nonASCIIAndEmojiRoundTrip() throws {
        let s = "héllo — 日本語 😀👍🏽 \u{10FFFF}"
        let v = JSONValue.string(s)
        // Written as raw UTF-8, not escaped.
        #expect(v.serialized() == Array("\"\(s)\"".utf8))
        #expect(try JSONParser.parse(v.serialized()) == v)
        // Surrogate-pair escapes decode to the same value and re-serialize as raw UTF-8.
        let escaped = try JSONParser.parse(#"["\ud83d\ude00\uD83D\uDC4D\uD83C\uDFFD","h\u00e9llo"]"#)
        #expect(escaped == ["😀👍🏽", "héllo"])
        #expect(escaped.jsonText == #"["😀👍🏽","héllo"]"#)
    }

    @Test func canonicalSortsKeysRecursivelyByUTF8Bytes() throws {
        let v = try JSONParser.parse(#"{"b":{"z":1,"a":[{"y":2,"x":3}]},"a":0,"B":1,"é":2,"z":3,"":4}"#)
        let canonical = String(decoding: v.canonicalSerialized(), as: UTF8.self)
        #expect(canonical == #"{"":4,"B":1,"a":0,"b":{"a":[{"x":3,"y":2}],"z":1},"z":3,"é":2}"#)
        // Insertion order is unaffected for the plain form.
        #expect(v.jsonText.hasPrefix(#"{"b":{"z":1"#))
        // Same members in a different order → same canonical bytes.
        let w = try JSONParser.parse(#"{"":4,"é":2,"z":3,"B":1,"a":0,"b":{"a":[{"x":3,"y":2}],"z":1}}"#)
        #expect(w.canonicalSerialized() == v.canonicalSerialized())
        #expect(w.serialized() != v.serialized())
        #expect(w == v)
    }

    @Test func canonicalOrdersByBytesNotCanonicalEquivalence() {
        // U+00E9 (C3 A9) sorts after "e\u{301}" (65 CC 81).
        let v: JSONValue = ["\u{E9}": 1, "e\u{301}": 2]
        #expect(v.canonicalSerialized() == Array("{\"e\u{301}\":2,\"\u{E9}\":1}".utf8))
    }

    @Test func largeStringSerialization() throws {
        let big = String(repeating: "a\"\\\u{1}é", count: 400_000)
        let v = JSONValue.array([.string(big)])
        let bytes = v.serialized()
        #expect(try JSONParser.parse(bytes) == v)
    }
}
