export default function Home() {
  return <p>Inngest functions are served at /api/inngest.</p>;
}
