// The WebRTC client of a line's live view, shared by the console's line page and the API's player page
// (/api/player). It sends an SDP offer to POST {api}/webrtc/offer, plays the answered video track and
// forwards late ICE candidates to POST {api}/webrtc/candidate. How requests are sent (session cookie,
// API key) is the caller's: it passes `post(path, body)`.

function gatheringComplete(pc, timeoutMs) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, timeoutMs);  // send what we have; later candidates are trickled
  });
}

/** Counts decoded frames: calls onFrame(total) for each frame the video element presents. */
function countFrames(video, onFrame) {
  let frames = 0;
  const tick = () => { onFrame(++frames); video.requestVideoFrameCallback(tick); };
  if ("requestVideoFrameCallback" in video) video.requestVideoFrameCallback(tick);
}

/**
 * Plays the active pipeline `activeId` in `video`. `onState(state, text)` hears connecting | playing | failed;
 * `onFrame(count)` hears each decoded frame. Returns the RTCPeerConnection (close() it to stop).
 */
export async function playLive(video, { activeId, post, onState = () => {}, onFrame = () => {} }) {
  onState("connecting", "connecting…");
  const pc = new RTCPeerConnection({ iceServers: [] });
  let sessionId = null;
  const early = [];
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.ontrack = (event) => { video.srcObject = event.streams[0] || new MediaStream([event.track]); };
  pc.onicecandidate = ({ candidate }) => {
    if (!candidate || !candidate.candidate) return;
    const body = { pipeline_id: activeId, candidate: candidate.candidate,
                   sdpMid: candidate.sdpMid, sdpMLineIndex: candidate.sdpMLineIndex };
    if (sessionId) post("/webrtc/candidate", { ...body, session_id: sessionId }).catch(() => {});
    else early.push(body);  // already part of the offer once gathering completes
  };
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === "connected") onState("playing", "live");
    if (pc.connectionState === "failed") onState("failed", "connection failed");
    if (pc.connectionState === "disconnected") onState("connecting", "reconnecting…");
  };
  await pc.setLocalDescription(await pc.createOffer());
  await gatheringComplete(pc, 2000);
  const answer = await post("/webrtc/offer", { pipeline_id: activeId, sdp: pc.localDescription.sdp, type: "offer" });
  sessionId = answer.session_id || null;
  await pc.setRemoteDescription({ type: answer.type, sdp: answer.sdp });
  if (sessionId && pc.iceGatheringState !== "complete") {
    for (const body of early) post("/webrtc/candidate", { ...body, session_id: sessionId }).catch(() => {});
  }
  countFrames(video, onFrame);
  return pc;
}
