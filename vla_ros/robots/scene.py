"""A synthetic camera scene drawn from the robot's joint state (mock hardware, demos, tests).

A side view of the arm(s) as planar chains over a table with a red cube; a camera whose name
contains "wrist" sees a close-up that follows the end effector. Deterministic for a given state.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..core.embodiment import RobotSpec


def _chains(spec: RobotSpec) -> list[tuple[list[int], int | None]]:
    """Joint indices of each arm's chain and its gripper index."""
    names = spec.joint_names
    groups: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        side = n.split("_", 1)[0] if n.split("_", 1)[0] in ("left", "right") else ""
        groups.setdefault(side, []).append(i)
    out = []
    for idx in groups.values():
        grip = next((i for i in idx if "gripper" in names[i]), None)
        out.append(([i for i in idx if i != grip], grip))
    return out


class SceneRenderer:
    def __init__(self, spec: RobotSpec, camera: str, width: int, height: int) -> None:
        self.spec, self.camera, self.w, self.h = spec, camera, int(width), int(height)
        self.chains = _chains(spec)
        self.wrist = "wrist" in camera
        self.side = "left" if "left" in camera else "right" if "right" in camera else ""
        # static background: sky gradient and table
        bg = np.zeros((self.h, self.w, 3), np.uint8)
        grad = np.linspace(200, 120, self.h, dtype=np.float32)[:, None]
        bg[:] = np.stack([grad * 0.8, grad * 0.9, grad], axis=-1).astype(np.uint8)
        self.table_y = int(self.h * 0.78)
        bg[self.table_y:] = (120, 90, 60)
        self.background = bg

    def _points(self, q: np.ndarray, chain: list[int], base_x: float) -> np.ndarray:
        scale = self.h * 0.22
        pts = [(base_x, self.table_y)]
        angle = -np.pi / 2  # straight up
        pan = q[chain[0]] if chain else 0.0
        x, y = base_x + 0.15 * scale * np.sin(pan), float(self.table_y)
        pts = [(x, y)]
        for k, j in enumerate(chain[1:4]):
            angle += q[j]
            length = scale * (1.0 if k < 2 else 0.45)
            x, y = x + length * np.cos(angle), y + length * np.sin(angle)
            pts.append((x, y))
        return np.array(pts)

    def render(self, q: np.ndarray, frame: int = 0) -> np.ndarray:
        """An RGB image (h, w, 3) uint8 for joint positions ``q`` (radians, robot order)."""
        img = self.background.copy()
        cube = (int(self.w * 0.68), self.table_y)
        s = max(4, self.h // 16)
        cv2.rectangle(img, (cube[0] - s, cube[1] - 2 * s), (cube[0] + s, cube[1]), (220, 30, 30), -1)
        n = len(self.chains)
        tips = []
        for k, (chain, grip) in enumerate(self.chains):
            base_x = self.w * (0.3 if n == 1 else 0.2 + 0.6 * k / max(1, n - 1))
            pts = self._points(q, chain, base_x)
            color = (40, 40, 40) if k == 0 else (60, 60, 160)
            for a, b in zip(pts[:-1], pts[1:]):
                cv2.line(img, tuple(int(v) for v in a), tuple(int(v) for v in b), color, max(2, self.h // 60))
                cv2.circle(img, tuple(int(v) for v in a), max(3, self.h // 70), (250, 200, 0), -1)
            tip = pts[-1]
            if grip is not None:
                j = self.spec.joints[grip]
                opening = (q[grip] - j.lower) / (j.upper - j.lower)
                d = int(4 + opening * self.h / 25)
                for sgn in (-1, 1):
                    cv2.line(img, (int(tip[0]) + sgn * d, int(tip[1])), (int(tip[0]) + sgn * d, int(tip[1]) + self.h // 20),
                             (90, 90, 90), max(2, self.h // 120))
            tips.append(tip)
        if self.wrist and tips:
            k = {"left": 0, "right": len(tips) - 1}.get(self.side, 0)
            cx, cy = tips[k]
            half_w, half_h = self.w // 4, self.h // 4
            x0 = int(np.clip(cx - half_w, 0, self.w - 2 * half_w))
            y0 = int(np.clip(cy - half_h, 0, self.h - 2 * half_h))
            img = cv2.resize(img[y0:y0 + 2 * half_h, x0:x0 + 2 * half_w], (self.w, self.h),
                             interpolation=cv2.INTER_LINEAR)
        cv2.putText(img, f"{self.camera} {frame}", (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
        return img
