import Foundation
import Hummingbird

/// One file of the status page. The files live in `Sources/PresenceAPI/StatusPage/` and are
/// compiled into the binary (`.embedInCode` in Package.swift, which generates `PackageResources`),
/// so `presence serve` needs nothing beside it and the page works offline.
struct StatusPageAsset: Sendable {
    /// The `Content-Type` it is served with.
    let contentType: String
    /// The file's bytes.
    let body: ByteBuffer
    /// A strong validator for `If-None-Match`: a quoted 64-bit FNV-1a hash of the bytes.
    let etag: String

    init(contentType: String, bytes: [UInt8]) {
        self.contentType = contentType
        self.body = ByteBuffer(bytes: bytes)
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        self.etag = "\"\(String(hash, radix: 16))\""
    }

    /// Whether an `If-None-Match` header value (`*`, or a list of tags, weak ones included) names this file.
    func matches(ifNoneMatch header: String) -> Bool {
        header.split(separator: ",").contains { candidate in
            let tag = candidate.trimmingCharacters(in: .whitespaces)
            return tag == "*" || tag == etag || tag == "W/" + etag
        }
    }

    /// The page, served at `/`.
    static let page = StatusPageAsset(contentType: "text/html; charset=utf-8", bytes: PackageResources.index_html)

    /// What the page loads, served at `/assets/{name}`.
    static let assets: [String: StatusPageAsset] = [
        "status.js": StatusPageAsset(contentType: "text/javascript; charset=utf-8", bytes: PackageResources.status_js),
        "status.css": StatusPageAsset(contentType: "text/css; charset=utf-8", bytes: PackageResources.status_css),
        "icon.svg": StatusPageAsset(contentType: "image/svg+xml", bytes: PackageResources.icon_svg),
    ]
}
