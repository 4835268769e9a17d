/// Redis Cluster's key → hash slot mapping: CRC16 (XMODEM) of the key's hash tag, modulo 16384.
public enum RedisKeySlot {
    /// The hash slot of `key`: only the part between the first `{` and the next `}` counts, when
    /// that part is not empty.
    public static func slot(_ key: String) -> Int {
        let bytes = Array(key.utf8)
        var tagged = bytes[...]
        if let open = bytes.firstIndex(of: UInt8(ascii: "{")),
           let close = bytes[(open + 1)...].firstIndex(of: UInt8(ascii: "}")), close > open + 1 {
            tagged = bytes[(open + 1)..<close]
        }
        var crc: UInt16 = 0
        for byte in tagged {
            crc ^= UInt16(byte) << 8
            for _ in 0..<8 { crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
        }
        return Int(crc) % 16384
    }
}
