// Reads a byte stream up to a cap: bodies and fetched documents are never buffered past their limit.

/** Thrown when a stream is longer than the cap it was read with. */
export class TooLargeError extends Error {
  override name = "TooLargeError";
}

/** Reads `stream` fully, throwing TooLargeError as soon as it exceeds `cap` bytes. */
export async function readCapped(
  stream: ReadableStream<Uint8Array> | null,
  cap: number,
): Promise<Uint8Array> {
  if (!stream) return new Uint8Array(0);
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > cap) {
      await reader.cancel();
      throw new TooLargeError(`more than ${cap} bytes`);
    }
    chunks.push(value);
  }
  const all = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    all.set(c, offset);
    offset += c.byteLength;
  }
  return all;
}

/** Decodes UTF-8 strictly (invalid bytes throw). */
export function decodeUtf8(bytes: Uint8Array): string {
  return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
}
