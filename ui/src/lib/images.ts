// Pictures of a safety-number QR code on their way to `verify_qr_image`: which files are
// accepted, how big, and turning one into the base64 the command takes.

/** The largest picture the UI sends (16 MiB); the core refuses bigger ones too. */
export const MAX_IMAGE_BYTES = 16 * 1024 * 1024;
/** The formats the core decodes. */
export const IMAGE_TYPES: readonly string[] = ["image/png", "image/jpeg"];

/** Why a picture cannot be checked, or null when it can. */
export function checkImage(file: Blob): string | null {
  if (!IMAGE_TYPES.includes(file.type)) return "Choose a PNG or JPEG image.";
  if (file.size > MAX_IMAGE_BYTES) {
    return "This image is larger than 16 MiB. Use a smaller image, such as a screenshot of the code.";
  }
  if (file.size === 0) return "This image is empty.";
  return null;
}

/** The bytes of `blob` as base64, without a `data:` prefix. */
export function blobToBase64(blob: Blob): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => {
      const url = String(reader.result);
      const comma = url.indexOf(",");
      resolve(comma < 0 ? "" : url.slice(comma + 1));
    };
    reader.onerror = () => reject(new Error("The image could not be read."));
    reader.readAsDataURL(blob);
  });
}

/** The first file in a drop or paste, preferring a PNG or JPEG; null when there is none. */
export function imageFromTransfer(transfer: DataTransfer | null): File | null {
  if (!transfer) return null;
  const files: File[] = [];
  for (const file of Array.from(transfer.files ?? [])) files.push(file);
  if (files.length === 0) {
    for (const item of Array.from(transfer.items ?? [])) {
      if (item.kind !== "file") continue;
      const file = item.getAsFile();
      if (file) files.push(file);
    }
  }
  return files.find((f) => IMAGE_TYPES.includes(f.type)) ?? files[0] ?? null;
}
