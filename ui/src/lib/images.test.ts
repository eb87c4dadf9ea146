import { describe, expect, it } from "vitest";
import { MAX_IMAGE_BYTES, blobToBase64, checkImage, imageFromTransfer } from "./images";

function sized(type: string, size: number): Blob {
  // A Blob that reports a size without allocating 16 MiB.
  const blob = new Blob(["x"], { type });
  Object.defineProperty(blob, "size", { value: size });
  return blob;
}

describe("images", () => {
  it("accepts PNG and JPEG up to 16 MiB", () => {
    expect(checkImage(sized("image/png", 1000))).toBeNull();
    expect(checkImage(sized("image/jpeg", MAX_IMAGE_BYTES))).toBeNull();
    expect(checkImage(sized("image/png", MAX_IMAGE_BYTES + 1))).toMatch(/larger than 16 MiB/);
    expect(checkImage(sized("image/gif", 10))).toMatch(/PNG or JPEG/);
    expect(checkImage(sized("text/html", 10))).toMatch(/PNG or JPEG/);
    expect(checkImage(sized("image/png", 0))).toMatch(/empty/);
  });

  it("encodes bytes as bare base64", async () => {
    const bytes = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0, 255]);
    expect(await blobToBase64(new Blob([bytes], { type: "image/png" }))).toBe("iVBORwD/");
  });

  it("finds the image among dropped or pasted files", () => {
    const text = new File(["a"], "a.txt", { type: "text/plain" });
    const png = new File(["b"], "b.png", { type: "image/png" });
    const transfer = { files: [text, png], items: [] } as unknown as DataTransfer;
    expect(imageFromTransfer(transfer)).toBe(png);
    const pasted = { files: [], items: [{ kind: "file", getAsFile: () => png }] } as unknown as DataTransfer;
    expect(imageFromTransfer(pasted)).toBe(png);
    expect(imageFromTransfer({ files: [], items: [{ kind: "string", getAsFile: () => null }] } as unknown as DataTransfer)).toBeNull();
    expect(imageFromTransfer(null)).toBeNull();
  });
});
