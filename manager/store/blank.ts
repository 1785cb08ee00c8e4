// Building objects: the generated interfaces require every scalar field, and decoding zero bytes
// yields exactly proto3's defaults, so a blank object is "decode nothing" plus the given fields.
import type { Codec } from '../../proto/gen/objects.js';

export function blank<T>(codec: Codec<T>, fields: Partial<T> = {}): T {
  return { ...codec.decode(new Uint8Array(0)), ...fields };
}

/** A deep copy, so a transaction can change an object without touching the committed one. */
export function copy<T>(codec: Codec<T>, value: T): T {
  return codec.decode(codec.encode(value));
}
