/** @type {import("next").NextConfig} */
const nextConfig = {
  // The app is built once into a cache directory and started many times; keep
  // the build self-contained and quiet.
  poweredByHeader: false,
};

export default nextConfig;
