// Upload a file straight to storage with the presigned POST the API returned.
//
// XMLHttpRequest rather than fetch: only XHR reports upload progress. The form carries every entry
// of `upload.fields` first, then the file in the part named `file`, as storage requires.

export class UploadError extends Error {
  constructor(message, status) {
    super(message);
    this.name = 'UploadError';
    this.status = status;
  }
}

export function uploadFile(upload, file, { onProgress, signal } = {}) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    for (const [name, value] of Object.entries(upload.fields ?? {})) form.append(name, value);
    form.append('file', file, file.name);

    const request = new XMLHttpRequest();
    request.open(upload.method || 'POST', upload.url);
    request.upload.addEventListener('progress', (event) => {
      if (event.lengthComputable && event.total > 0) onProgress?.(event.loaded / event.total);
    });
    request.addEventListener('load', () => {
      if (request.status >= 200 && request.status < 300) {
        onProgress?.(1);
        resolve();
      } else {
        reject(new UploadError(storageMessage(request), request.status));
      }
    });
    request.addEventListener('error', () => {
      reject(new UploadError('The upload could not reach storage (network failure, or the bucket does not allow this page\'s origin).', 0));
    });
    request.addEventListener('abort', () => reject(new UploadError('The upload was cancelled.', 0)));
    signal?.addEventListener('abort', () => request.abort(), { once: true });
    request.send(form);
  });
}

function storageMessage(request) {
  let detail = '';
  try {
    const xml = new DOMParser().parseFromString(request.responseText || '', 'application/xml');
    detail = xml.querySelector('Message')?.textContent ?? '';
  } catch {
    detail = '';
  }
  return `Storage refused the upload (${request.status})${detail ? `: ${detail}` : '.'}`;
}
