// A small QObject for moc: the input of tests/test_generated_real.py.
#pragma once

#include <QObject>
#include <QString>

class Counter : public QObject
{
    Q_OBJECT
    Q_PROPERTY(int value READ value WRITE setValue NOTIFY valueChanged)

public:
    explicit Counter(QObject *parent = nullptr);
    int value() const { return m_value; }

public slots:
    void setValue(int value);
    void reset();

signals:
    void valueChanged(int newValue);
    void renamed(const QString &name);

private:
    int m_value = 0;
};
