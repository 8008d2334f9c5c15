"""WebSocket frames as the measurement scripts read them (stdlib only): a server's frames, which are not masked."""
import struct


def split_frame(buffer):
    """The first whole frame of `buffer` as (opcode, payload, bytes it took), or None while it is incomplete."""
    if len(buffer) < 2:
        return None
    opcode, length, offset = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
    if length == 126:
        if len(buffer) < 4:
            return None
        length, offset = struct.unpack("!H", bytes(buffer[2:4]))[0], 4
    elif length == 127:
        if len(buffer) < 10:
            return None
        length, offset = struct.unpack("!Q", bytes(buffer[2:10]))[0], 10
    if len(buffer) < offset + length:
        return None
    return opcode, bytes(buffer[offset:offset + length]), offset + length


def close_code(payload):
    """The status code of a close frame's payload: 1005 when it has none."""
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
